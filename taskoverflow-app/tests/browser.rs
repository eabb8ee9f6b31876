//! The web UI in a real browser: headless Chromium driven through chromedriver.
//!
//! The application runs in this process on the embedded default (an in-memory SQLite todo
//! store, the in-process broker and result store, and a worker running the calendar jobs, as
//! `taskoverflow serve` runs them). The test adds a todo with a deadline through the page,
//! ticks it done, exports the calendar, and downloads the file the page links to.
//!
//! chromedriver comes from `CHROMEDRIVER` (default `/usr/bin/chromedriver`) and Chromium from
//! `CHROME_BIN` (default `/usr/bin/chromium`); `scripts/chromium.sh` installs both on Debian or
//! Ubuntu. When either is missing the test prints `SKIPPED <test>: <reason>` and passes, unless
//! `BROKER_TEST_REQUIRE` is `all` (or lists `browser`), which makes it fail.
//!
//! `BROWSER_TEST_SCREENSHOT=<file.png>` saves a screenshot of the page after the export. When
//! the scenario fails, a screenshot is saved in the temporary directory and its path printed.

use std::{
    future::Future,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use broker_core::worker::Worker;
use conformance_tests::{Unavailable, skip};
use fantoccini::{Client, ClientBuilder, Locator, elements::Element, error::CmdError};
use reqwest::StatusCode;
use serde_json::{Value, json};
use taskoverflow::{
    api::{self, AppState},
    cli,
    jobs::{self, CalendarJobs},
    store::{StoreLocation, TodoStore},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tokio_util::sync::CancellationToken;

const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const DEFAULT_CHROME: &str = "/usr/bin/chromium";

/// How long the page may take to show the effect of a click.
const UI_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the calendar export may take, from the click to the download link.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long chromedriver may take to answer after it starts.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(15);

/// The todo the scenario creates.
const TITLE: &str = "Water the plants";
/// Its deadline as a `datetime-local` field holds it (browser's local time).
const DEADLINE_LOCAL: &str = "2030-12-31T10:30";

/// Chromium's switches: headless, no sandbox (containers, root), and nothing that reaches for
/// the network on its own (the machines running this have no internet access).
const CHROME_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1100,1000",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_ui_adds_completes_and_exports_a_todo_to_a_downloadable_calendar() {
    let Some(tools) = BrowserTools::find() else {
        return;
    };
    let app = App::start().await;
    let driver = ChromeDriver::start(&tools.chromedriver).await;
    let profile = TempDir::new("taskoverflow-chromium");
    let browser = open_browser(&driver.url, &tools.chrome, &profile.0).await;

    // The scenario runs as its own task so that a failed assertion still lets the browser
    // session close (which ends Chromium) before the panic is passed on.
    let outcome = tokio::spawn(scenario(browser.clone(), app.base_url.clone())).await;
    if outcome.is_err() {
        save_failure_screenshot(&browser).await;
    }
    let closed = browser.close().await;
    drop(driver);
    app.stop().await;
    profile.remove().await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("the scenario did not finish: {error}"),
        }
    }
    closed.expect("the browser session closes");
}

/// Add, complete and export a todo through the page; download the calendar it links to.
async fn scenario(browser: Client, base_url: String) {
    let http = reqwest::Client::new();
    browser
        .goto(&format!("{base_url}/"))
        .await
        .expect("the page loads");

    // Create a todo with a title and a deadline.
    let title_input = eventually(UI_TIMEOUT, "the new-todo form", async || {
        present(browser.find(Locator::Css("#new-title")).await)
    })
    .await;
    title_input.send_keys(TITLE).await.expect("typing a title");
    let deadline_input = browser
        .find(Locator::Css("#new-deadline"))
        .await
        .expect("a deadline field");
    // What a `datetime-local` field accepts from the keyboard depends on the browser's
    // locale; set its value as its picker does, with the events a picker fires.
    let set_value = browser
        .execute(
            "const input = arguments[0];
             input.value = arguments[1];
             input.dispatchEvent(new Event('input', { bubbles: true }));
             input.dispatchEvent(new Event('change', { bubbles: true }));
             return input.value;",
            vec![element_arg(&deadline_input), json!(DEADLINE_LOCAL)],
        )
        .await
        .expect("setting the deadline");
    assert_eq!(
        set_value,
        json!(DEADLINE_LOCAL),
        "the deadline field's value"
    );
    // The page sends the deadline as UTC: the same instant as the browser converts it.
    let deadline_utc = browser
        .execute(
            "return new Date(arguments[0]).toISOString();",
            vec![json!(DEADLINE_LOCAL)],
        )
        .await
        .expect("converting the deadline")
        .as_str()
        .expect("an ISO string")
        .trim_end_matches(".000Z")
        .to_owned();
    click(&browser, "#add-todo").await;

    let item = eventually(UI_TIMEOUT, "the new todo in the list", async || {
        todo_item(&browser, TITLE).await
    })
    .await;
    let id: i64 = item
        .attr("data-id")
        .await
        .expect("reading data-id")
        .and_then(|id| id.parse().ok())
        .expect("the item carries its todo id");
    let due = item
        .find(Locator::Css(".todo-deadline"))
        .await
        .expect("the item shows its deadline")
        .text()
        .await
        .expect("deadline text");
    assert!(
        due.starts_with("Due ") && due.contains("2030"),
        "deadline shown as {due:?}"
    );
    assert_eq!(
        browser
            .find(Locator::Css("#new-title"))
            .await
            .expect("the title field")
            .prop("value")
            .await
            .expect("its value")
            .as_deref(),
        Some(""),
        "the form is cleared after adding"
    );
    let stored = get_json(&http, &format!("{base_url}{}/todos/{id}", api::API_BASE)).await;
    assert_eq!(stored["title"], TITLE, "{stored}");
    assert_eq!(stored["deadline_at"], json!(deadline_utc), "{stored}");
    assert_eq!(stored["completed"], false, "{stored}");

    // Tick it: the page saves it and shows it as done.
    item.find(Locator::Css(".todo-toggle"))
        .await
        .expect("the item has a checkbox")
        .click()
        .await
        .expect("ticking the checkbox");
    let done = eventually(UI_TIMEOUT, "the todo to show as done", async || {
        let Some(item) = todo_item(&browser, TITLE).await? else {
            return Ok(None);
        };
        let class = item.attr("class").await?.unwrap_or_default();
        let ticked = item
            .find(Locator::Css(".todo-toggle"))
            .await?
            .is_selected()
            .await?;
        Ok((class.split_whitespace().any(|c| c == "done") && ticked).then_some(item))
    })
    .await;
    let title_element = done
        .find(Locator::Css(".todo-title"))
        .await
        .expect("the item's title");
    let decoration = browser
        .execute(
            "return getComputedStyle(arguments[0]).textDecorationLine;",
            vec![element_arg(&title_element)],
        )
        .await
        .expect("reading the title's style");
    assert!(
        decoration
            .as_str()
            .is_some_and(|d| d.contains("line-through")),
        "a done todo's title is struck through, not {decoration}"
    );
    let stored = get_json(&http, &format!("{base_url}{}/todos/{id}", api::API_BASE)).await;
    assert_eq!(
        stored["completed"], true,
        "the API has it completed: {stored}"
    );

    // Export the calendar: the page polls the job until the worker has built it.
    click(&browser, "#export-ical").await;
    let link = eventually(EXPORT_TIMEOUT, "the calendar download link", async || {
        if let Some(link) = present(browser.find(Locator::Css("#ical-download")).await)? {
            return Ok(Some(link));
        }
        let status = browser
            .find(Locator::Css("#ical-status"))
            .await?
            .text()
            .await?;
        assert!(
            !status.starts_with("FAILURE"),
            "the page reports the export failed: {status}"
        );
        Ok(None)
    })
    .await;
    let status = browser
        .find(Locator::Css("#ical-status"))
        .await
        .expect("the export status")
        .text()
        .await
        .expect("its text");
    assert_eq!(status, "SUCCESS", "the export status shown");
    assert_eq!(
        link.attr("download").await.expect("reading download"),
        Some("todos.ics".to_owned()),
        "the link saves as todos.ics"
    );
    let href = link
        .attr("href")
        .await
        .expect("reading href")
        .expect("the link has an href");
    let prefix = format!("{base_url}{}/todos/ical/", api::API_BASE);
    let task_id = href
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix("/result"))
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .unwrap_or_else(|| panic!("the link {href:?} is not {prefix}<task id>/result"));
    let task = get_json(&http, &format!("{prefix}{task_id}/status")).await;
    assert_eq!(task["task_status"], "SUCCESS", "{task}");
    assert_eq!(
        task["result_url"],
        json!(href),
        "the link is the job's result URL"
    );

    if let Some(path) = std::env::var_os("BROWSER_TEST_SCREENSHOT") {
        let png = browser.screenshot().await.expect("a screenshot");
        std::fs::write(&path, png).expect("the screenshot is saved");
    }

    // The file behind the link is the calendar of the todo.
    let response = http.get(&href).send().await.expect("the result answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/calendar"),
        "content type {content_type:?}"
    );
    let calendar = response.text().await.expect("the calendar text");
    let dtstart = deadline_utc.replace(['-', ':'], "");
    for line in [
        "BEGIN:VCALENDAR".to_owned(),
        format!("SUMMARY:{TITLE}"),
        format!("DTSTART:{dtstart}"),
        format!("UID:{id}"),
    ] {
        assert!(
            calendar.lines().any(|l| l == line),
            "the calendar lacks {line:?}:\n{calendar}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Page helpers
// ---------------------------------------------------------------------------------------------

/// Polls `probe` until it gives a value; fails the test after `timeout`. Probe errors (an
/// element replaced while being read, for example) count as "not yet".
async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, CmdError>>,
{
    let started = Instant::now();
    let mut last_error = None;
    loop {
        match probe().await {
            Ok(Some(value)) => return value,
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what} (last error: {last_error:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A find result as "found" or "not yet".
fn present(found: Result<Element, CmdError>) -> Result<Option<Element>, CmdError> {
    match found {
        Ok(element) => Ok(Some(element)),
        Err(error) if error.is_no_such_element() => Ok(None),
        Err(error) => Err(error),
    }
}

/// The `.todo-item` whose title is `title`, if the list shows one.
async fn todo_item(browser: &Client, title: &str) -> Result<Option<Element>, CmdError> {
    for item in browser.find_all(Locator::Css(".todo-item")).await? {
        let shown = item.find(Locator::Css(".todo-title")).await?.text().await?;
        if shown == title {
            return Ok(Some(item));
        }
    }
    Ok(None)
}

async fn click(browser: &Client, selector: &str) {
    browser
        .find(Locator::Css(selector))
        .await
        .unwrap_or_else(|error| panic!("no {selector}: {error}"))
        .click()
        .await
        .unwrap_or_else(|error| panic!("clicking {selector}: {error}"));
}

/// An element as a script argument.
fn element_arg(element: &Element) -> Value {
    serde_json::to_value(element).expect("an element serializes as a reference")
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let response = http.get(url).send().await.expect("the API answers");
    assert_eq!(response.status(), StatusCode::OK, "GET {url}");
    response.json().await.expect("a JSON body")
}

async fn save_failure_screenshot(browser: &Client) {
    let path = std::env::temp_dir().join("taskoverflow-browser-failure.png");
    match browser.screenshot().await {
        Ok(png) => match std::fs::write(&path, png) {
            Ok(()) => eprintln!("screenshot of the failed page: {}", path.display()),
            Err(error) => eprintln!("could not save the screenshot: {error}"),
        },
        Err(error) => eprintln!("could not take a screenshot: {error}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------------------------

/// Where chromedriver and Chromium are.
struct BrowserTools {
    chromedriver: PathBuf,
    chrome: PathBuf,
}

impl BrowserTools {
    /// Both programs, or `None` after printing why the test is skipped (or failing when the
    /// browser is required).
    fn find() -> Option<Self> {
        skip::or_skip(Self::locate())
    }

    /// Both programs, or which are missing.
    fn locate() -> Result<Self, Unavailable> {
        let chromedriver = program("CHROMEDRIVER", DEFAULT_CHROMEDRIVER);
        let chrome = program("CHROME_BIN", DEFAULT_CHROME);
        let missing: Vec<String> = [
            ("chromedriver", "CHROMEDRIVER", &chromedriver),
            ("Chromium", "CHROME_BIN", &chrome),
        ]
        .into_iter()
        .filter(|(_, _, path)| !path.is_file())
        .map(|(name, variable, path)| {
            format!("{name} not found at {} ({variable})", path.display())
        })
        .collect();
        if missing.is_empty() {
            return Ok(Self {
                chromedriver,
                chrome,
            });
        }
        Err(Unavailable::new(
            "browser",
            format!(
                "{}: run scripts/chromium.sh to install them",
                missing.join("; ")
            ),
        ))
    }
}

fn program(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable)
        .filter(|value| !value.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// A chromedriver process on a free loopback port, killed with its process group on drop.
struct ChromeDriver {
    url: String,
    child: tokio::process::Child,
}

impl ChromeDriver {
    async fn start(program: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let child = tokio::process::Command::new(program)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that the browsers it starts go with it on drop.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", program.display()));
        let driver = Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        driver.wait_until_ready().await;
        driver
    }

    async fn wait_until_ready(&self) {
        let http = reqwest::Client::new();
        let status_url = format!("{}/status", self.url);
        let started = Instant::now();
        loop {
            if let Ok(response) = http.get(&status_url).send().await {
                if let Ok(status) = response.json::<Value>().await {
                    if status["value"]["ready"] == true {
                        return;
                    }
                }
            }
            assert!(
                started.elapsed() < DRIVER_START_TIMEOUT,
                "chromedriver did not answer on {status_url} within {DRIVER_START_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // Ends chromedriver and whatever it started that is still running (after a failure
        // that left the session open). `kill_on_drop` then only reaps.
        if let Some(group) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A session of headless Chromium with a fresh profile in `profile`.
async fn open_browser(driver_url: &str, chrome: &Path, profile: &Path) -> Client {
    let mut args: Vec<String> = CHROME_ARGS.iter().map(|&arg| arg.to_owned()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({ "binary": chrome, "args": args }),
    );
    ClientBuilder::native()
        .capabilities(capabilities)
        .connect(driver_url)
        .await
        .unwrap_or_else(|error| panic!("chromedriver cannot start Chromium: {error}"))
}

/// A directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{prefix}-{:016x}", fastrand::u64(..)));
        std::fs::create_dir_all(&path).expect("a temporary directory");
        Self(path)
    }
}

impl TempDir {
    /// Removes the directory, retrying while a browser that is still shutting down writes
    /// into it.
    async fn remove(self) {
        for _ in 0..25 {
            let _ = std::fs::remove_dir_all(&self.0);
            tokio::time::sleep(Duration::from_millis(200)).await;
            if !self.0.exists() {
                return;
            }
        }
        eprintln!("could not remove {}", self.0.display());
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// The application
// ---------------------------------------------------------------------------------------------

/// The application on the embedded default, served on a free loopback port, with its worker.
struct App {
    base_url: String,
    store: TodoStore,
    stop_server: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
    stop_worker: CancellationToken,
    worker: JoinHandle<broker_core::Result<broker_core::worker::WorkerReport>>,
}

impl App {
    async fn start() -> Self {
        let store = TodoStore::open(&StoreLocation::Memory)
            .await
            .expect("the in-memory store opens");
        let calendar = CalendarJobs::in_process(jobs::DEFAULT_QUEUE)
            .await
            .expect("in-process jobs");
        // As `taskoverflow serve` does on the embedded broker: the worker runs in this process.
        let stop_worker = CancellationToken::new();
        let worker = Worker::new(
            calendar.queue.clone(),
            calendar.results.clone(),
            jobs::tasks(),
        )
        .with_options(cli::worker::options(2, Duration::from_secs(5)));
        let worker = tokio::spawn(worker.run(stop_worker.clone()));

        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port is free");
        let address = listener.local_addr().expect("the listener has an address");
        let app = api::router(AppState::new(store.clone(), calendar));
        let (stop_server, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Self {
            base_url: format!("http://{address}"),
            store,
            stop_server,
            server,
            stop_worker,
            worker,
        }
    }

    async fn stop(self) {
        let _ = self.stop_server.send(());
        let _ = self.server.await;
        self.stop_worker.cancel();
        let _ = self.worker.await;
        self.store.close().await;
    }
}
