//! The comparison drawn as an SVG chart.
//!
//! One panel per operation (columns: publish, consume and ack, end to end) and payload size
//! (rows, smallest first). Each panel has a group of bars per broker, in the same places in
//! every panel; within a group, one cluster per batch size (a colour each, smallest first),
//! and within a cluster one bar per function: the framework solid, the raw client light with
//! an outline, any further function outlined only (a fourth dark, then the styles repeat).
//! A thin black line on each bar spans the rate's confidence interval. The y axis is
//! messages per second on a log scale shared by all panels, so bars compare across panels.
//!
//! Text is written as SVG `<text>` for the viewer to set in its own sans-serif font; no font
//! file is read.

use std::{fs, io, path::Path};

use plotters::{
    coord::Shift,
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use super::{
    about::About,
    results::{Payload, Rate, operation_rank},
    table::Table,
};

const LEGEND_HEIGHT: u32 = 76;
const PANEL_HEIGHT: u32 = 380;
const FONT: &str = "sans-serif";

/// Colours of the batch sizes, smallest batch first, repeating after the sixth.
const BATCH_COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(214, 39, 40),
    RGBColor(140, 86, 75),
];

/// What the chart shows, in drawing order.
struct Layout<'t> {
    brokers: Vec<&'t str>,
    operations: Vec<&'t str>,
    payloads: Vec<&'t Payload>,
    batches: Vec<u64>,
    functions: Vec<&'t str>,
    /// The y axis: powers of ten around every rate and its interval.
    low: f64,
    high: f64,
}

impl<'t> Layout<'t> {
    fn new(table: &'t Table) -> Layout<'t> {
        let rows = table.rows();
        let mut brokers: Vec<&str> = Vec::new();
        let mut operations: Vec<&str> = Vec::new();
        let mut payloads: Vec<&Payload> = Vec::new();
        let mut batches: Vec<u64> = Vec::new();
        let (mut min, mut max) = (f64::INFINITY, 0.0_f64);
        for row in rows {
            let case = &row.case;
            push_new(&mut brokers, case.backend.as_str());
            push_new(&mut operations, case.operation.as_str());
            push_new(&mut payloads, &case.payload);
            push_new(&mut batches, case.batch);
            for rate in row.rates.values() {
                for value in [rate.low, rate.mean, rate.high] {
                    if value.is_finite() && value > 0.0 {
                        min = min.min(value);
                        max = max.max(value);
                    }
                }
            }
        }
        // Rows come sorted by broker already; the other three need sorting.
        operations.sort_by_key(|o| operation_rank(o));
        payloads.sort();
        batches.sort_unstable();
        let functions = table
            .functions()
            .iter()
            .map(String::as_str)
            .filter(|f| rows.iter().any(|r| r.rates.contains_key(*f)))
            .collect();
        let (low, high) = if max > 0.0 {
            let low = 10f64.powf(min.log10().floor());
            let high = 10f64.powf(max.log10().ceil());
            (low, if high > low { high } else { low * 10.0 })
        } else {
            (1.0, 10.0)
        };
        Layout {
            brokers,
            operations,
            payloads,
            batches,
            functions,
            low,
            high,
        }
    }

    fn bars_per_broker(&self) -> usize {
        self.batches.len() * self.functions.len()
    }

    /// Wide enough for 9 px a bar and a broker's name.
    fn panel_width(&self) -> u32 {
        let group = (self.bars_per_broker() * 9 + 16).max(70);
        u32::try_from(90 + self.brokers.len() * group)
            .unwrap_or(u32::MAX)
            .max(360)
    }

    /// Where on the x axis the bar of `batch` (index) and `function` (index) of broker
    /// `broker` (index) starts and ends; broker `i`'s group is centred on `i`.
    fn bar_span(&self, broker: usize, batch: usize, function: usize) -> (f64, f64) {
        let cluster = 0.8 / self.batches.len() as f64;
        let bar = cluster * 0.85 / self.functions.len() as f64;
        let start = broker as f64 - 0.4 + cluster * batch as f64 + bar * function as f64;
        (start, start + bar)
    }
}

fn push_new<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// How a function's bar is filled and outlined, by its place in the table's functions.
fn bar_style(colour: RGBColor, function: usize) -> (ShapeStyle, Option<ShapeStyle>) {
    let mix = |to: u8, share: f64| {
        let channel = |c: u8| (f64::from(c) + (f64::from(to) - f64::from(c)) * share) as u8;
        RGBColor(channel(colour.0), channel(colour.1), channel(colour.2))
    };
    match function % 4 {
        0 => (colour.filled(), None),
        1 => (mix(255, 0.65).filled(), Some(colour.stroke_width(1))),
        2 => (WHITE.filled(), Some(colour.stroke_width(2))),
        _ => (mix(0, 0.45).filled(), None),
    }
}

/// Messages per second for an axis label: `500`, `20k`, `1.5M`.
fn axis_label(value: f64) -> String {
    let (number, suffix) = match value {
        v if v >= 1e9 => (v / 1e9, "G"),
        v if v >= 1e6 => (v / 1e6, "M"),
        v if v >= 1e3 => (v / 1e3, "k"),
        v => (v, ""),
    };
    let text = format!("{number:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text}{suffix}")
}

/// The chart as the text of an SVG file, `about` in its title. An empty table gives a chart
/// with its title and a note that there are no results.
///
/// # Errors
/// When plotters fails to draw, which writing to a string should never do.
pub fn svg(table: &Table, about: &About) -> io::Result<String> {
    let layout = Layout::new(table);
    let columns = layout.operations.len().max(1);
    let rows = layout.payloads.len().max(1);
    let width = layout.panel_width() * u32::try_from(columns).unwrap_or(1);
    let height = LEGEND_HEIGHT + PANEL_HEIGHT * u32::try_from(rows).unwrap_or(1);
    let mut text = String::new();
    draw(
        &SVGBackend::with_string(&mut text, (width, height)).into_drawing_area(),
        &layout,
        table,
        about,
    )
    .map_err(|e| io::Error::other(format!("drawing the chart: {e}")))?;
    Ok(text)
}

/// Draws the chart (see [`svg`]) and writes it to `path`, replacing any file there.
///
/// # Errors
/// When the file cannot be written.
pub fn write_svg(table: &Table, about: &About, path: &Path) -> io::Result<()> {
    fs::write(path, svg(table, about)?)
}

type DrawResult = Result<(), DrawingAreaErrorKind<io::Error>>;

fn draw(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    layout: &Layout<'_>,
    table: &Table,
    about: &About,
) -> DrawResult {
    root.fill(&WHITE)?;
    let (legend, body) = root.split_vertically(LEGEND_HEIGHT);
    draw_legend(&legend, layout, about)?;
    if table.is_empty() {
        body.draw(&Text::new(
            "no results",
            (20, 20),
            (FONT, 18).into_font().color(&BLACK),
        ))?;
    } else {
        let panels = body.split_evenly((layout.payloads.len(), layout.operations.len()));
        let cells = layout
            .payloads
            .iter()
            .flat_map(|p| layout.operations.iter().map(move |o| (*p, *o)));
        for (panel, (payload, operation)) in panels.iter().zip(cells) {
            draw_panel(root, panel, layout, table, operation, payload)?;
        }
    }
    root.present()
}

fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    layout: &Layout<'_>,
    about: &About,
) -> DrawResult {
    let title = (FONT, 20).into_font().color(&BLACK);
    let label = (FONT, 15).into_font().color(&BLACK);
    area.draw(&Text::new(
        format!(
            "Messages per second, log scale: criterion results of {} on {}",
            about.date, about.machine
        ),
        (12, 10),
        title,
    ))?;
    let swatch = |x: i32, fill: ShapeStyle, outline: Option<ShapeStyle>| -> DrawResult {
        area.draw(&Rectangle::new([(x, 44), (x + 14, 58)], fill))?;
        if let Some(outline) = outline {
            area.draw(&Rectangle::new([(x, 44), (x + 14, 58)], outline))?;
        }
        Ok(())
    };
    // Text is about 8 px a character at this size; the SVG viewer sets the real width.
    let advance = |text: &str| 30 + 8 * i32::try_from(text.chars().count()).unwrap_or(0);
    let mut x = 12;
    for (i, batch) in layout.batches.iter().enumerate() {
        let text = format!("batch {batch}");
        swatch(x, BATCH_COLOURS[i % BATCH_COLOURS.len()].filled(), None)?;
        area.draw(&Text::new(text.clone(), (x + 20, 45), label.clone()))?;
        x += advance(&text);
    }
    x += 24;
    for (i, function) in layout.functions.iter().enumerate() {
        let (fill, outline) = bar_style(RGBColor(90, 90, 90), i);
        swatch(x, fill, outline)?;
        area.draw(&Text::new(
            function.to_string(),
            (x + 20, 45),
            label.clone(),
        ))?;
        x += advance(function);
    }
    x += 24;
    area.draw(&PathElement::new(
        vec![(x + 7, 42), (x + 7, 60)],
        BLACK.stroke_width(1),
    ))?;
    area.draw(&Text::new("confidence interval", (x + 20, 45), label))?;
    Ok(())
}

fn draw_panel(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    panel: &DrawingArea<SVGBackend<'_>, Shift>,
    layout: &Layout<'_>,
    table: &Table,
    operation: &str,
    payload: &Payload,
) -> DrawResult {
    let caption = match payload {
        Payload::Unknown => format!("{operation}, messages of unknown size"),
        sized => format!("{operation}, {sized} messages"),
    };
    let mut chart = ChartBuilder::on(panel)
        .caption(caption, (FONT, 18))
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d(
            -0.5..(layout.brokers.len() as f64 - 0.5),
            (layout.low..layout.high).log_scale(),
        )?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(242, 242, 242))
        .x_labels(0)
        .y_desc("msg/s")
        .y_label_formatter(&|v| axis_label(*v))
        .draw()?;

    let separator = RGBColor(210, 210, 210).stroke_width(1);
    for i in 1..layout.brokers.len() {
        let x = i as f64 - 0.5;
        chart.draw_series([PathElement::new(
            vec![(x, layout.low), (x, layout.high)],
            separator,
        )])?;
    }

    let rows: Vec<_> = table
        .rows()
        .iter()
        .filter(|r| r.case.operation == operation && r.case.payload == *payload)
        .collect();
    if rows.is_empty() {
        let (x, y) = chart.backend_coord(&(-0.4, layout.high));
        root.draw(&Text::new(
            "no results",
            (x, y + 12),
            (FONT, 15).into_font().color(&RGBColor(120, 120, 120)),
        ))?;
    }
    for row in rows {
        let Some(broker) = layout.brokers.iter().position(|b| *b == row.case.backend) else {
            continue;
        };
        let Some(batch) = layout.batches.iter().position(|b| *b == row.case.batch) else {
            continue;
        };
        let colour = BATCH_COLOURS[batch % BATCH_COLOURS.len()];
        for (function, name) in layout.functions.iter().enumerate() {
            if let Some(rate) = row.rate(name) {
                draw_bar(
                    &mut chart,
                    layout,
                    layout.bar_span(broker, batch, function),
                    rate,
                    bar_style(colour, function),
                )?;
            }
        }
    }

    let name_style = (FONT, 15)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (i, broker) in layout.brokers.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64, layout.low));
        root.draw(&Text::new(
            broker.to_string(),
            (x, y + 6),
            name_style.clone(),
        ))?;
    }
    Ok(())
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, LogCoord<f64>>,
>;

fn draw_bar(
    chart: &mut Chart<'_, '_>,
    layout: &Layout<'_>,
    (left, right): (f64, f64),
    rate: Rate,
    (fill, outline): (ShapeStyle, Option<ShapeStyle>),
) -> DrawResult {
    let top = rate.mean.clamp(layout.low, layout.high);
    let corners = [(left, layout.low), (right, top)];
    chart.draw_series([Rectangle::new(corners, fill)])?;
    if let Some(outline) = outline {
        chart.draw_series([Rectangle::new(corners, outline)])?;
    }
    if rate.high > rate.low {
        let middle = (left + right) / 2.0;
        chart.draw_series([PathElement::new(
            vec![
                (middle, rate.low.clamp(layout.low, layout.high)),
                (middle, rate.high.clamp(layout.low, layout.high)),
            ],
            BLACK.stroke_width(1),
        )])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{results::read, testing::FakeCriterion};

    fn about() -> About {
        About {
            date: "2026-12-08".into(),
            machine: "2 CPUs (Example CPU)".into(),
        }
    }

    #[test]
    fn svg_is_written_with_every_broker_and_panel() {
        let dir = FakeCriterion::new("chart");
        for (backend, ns) in [("memory", 1e5), ("redis", 1e7), ("postgres", 4e7)] {
            for operation in ["publish", "consume_ack"] {
                for batch in [1, 10, 100] {
                    let value = format!("{batch}x100B");
                    dir.add(
                        &format!("{backend}/{operation}"),
                        "framework",
                        &value,
                        100,
                        ns,
                    );
                    dir.add(
                        &format!("{backend}/{operation}"),
                        "raw",
                        &value,
                        100,
                        ns * 0.9,
                    );
                }
            }
        }
        dir.add("kafka/publish", "framework", "1x10KiB", 100, 2e7);
        let table = Table::new(&read(dir.path()).expect("read").measurements);
        let path = dir.path().join("chart.svg");

        write_svg(&table, &about(), &path).expect("write the chart");

        let svg = fs::read_to_string(&path).expect("the chart was written");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        for name in ["memory", "redis", "postgres", "kafka"] {
            let label = format!(">\n{name}\n</text>");
            assert_eq!(
                svg.matches(&label).count(),
                4,
                "{name} under each of the 4 panels"
            );
        }
        for caption in [
            "publish, 100B messages",
            "consume_ack, 100B messages",
            "publish, 10KiB messages",
            "consume_ack, 10KiB messages",
        ] {
            assert!(svg.contains(caption), "caption {caption}");
        }
        assert!(svg.contains("2026-12-08") && svg.contains("Example CPU"));
        // 37 rates, each a filled bar; raw's bars are outlined too.
        let bars = svg.matches("<rect").count();
        assert!(bars >= 37 + 18, "{bars} rectangles");
    }

    #[test]
    fn an_empty_table_still_gives_an_svg() {
        let svg = svg(&Table::default(), &about()).expect("draw");
        assert!(svg.contains("no results"));
    }

    #[test]
    fn y_axis_spans_powers_of_ten_around_every_interval() {
        let dir = FakeCriterion::new("axis");
        // 100 messages in 1 ms ±10 %: 90,909 to 111,111 msg/s.
        dir.add("memory/publish", "framework", "1x100B", 100, 1e6);
        let table = Table::new(&read(dir.path()).expect("read").measurements);
        let layout = Layout::new(&table);
        assert_eq!((layout.low, layout.high), (10_000.0, 1_000_000.0));
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(axis_label(500.0), "500");
        assert_eq!(axis_label(20_000.0), "20k");
        assert_eq!(axis_label(1_500_000.0), "1.5M");
        assert_eq!(axis_label(0.5), "0.5");
    }
}
