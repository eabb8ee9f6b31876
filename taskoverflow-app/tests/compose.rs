//! The `docker-compose.yml` at the repository root, checked without Docker.
//!
//! No Docker engine runs where these tests run, so they read the file and check what would
//! otherwise only show at `docker compose up`: that `app` and `worker` depend on services that
//! exist and are healthy first, that the API is published on 6400 and listens on every
//! interface, and that every broker, result-backend and database URL, the commented
//! alternatives included, parses with the parser the program uses, names a service of the file
//! and pairs a broker with a result store the program accepts.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use broker_core::urls::{UrlKind, UrlParts};
use serde_norway::{Mapping, Value};
use taskoverflow::{backends::compiled_in, config::QueueSettings, store::StoreLocation};

const BROKER: &str = "CELERY_BROKER_URL";
const RESULTS: &str = "CELERY_RESULT_BACKEND";
const DATABASE: &str = "DATABASE_URL";
const QUEUE: &str = "CELERY_DEFAULT_QUEUE";
/// The variables holding URLs, as the commented alternatives name them.
const URL_VARIABLES: [&str; 3] = [BROKER, RESULTS, DATABASE];
/// The two services built from this repository.
const OUR_SERVICES: [&str; 2] = ["app", "worker"];

// ---------------------------------------------------------------------------------------------
// Reading the file
// ---------------------------------------------------------------------------------------------

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `docker-compose.yml`: its text and its services, with `<<` merge keys applied as Docker
/// Compose applies them.
struct ComposeFile {
    text: String,
    services: Mapping,
}

impl ComposeFile {
    fn load() -> Self {
        let path = repository_root().join("docker-compose.yml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        let mut document: Value = serde_norway::from_str(&text)
            .unwrap_or_else(|error| panic!("docker-compose.yml is not valid YAML: {error}"));
        document
            .apply_merge()
            .unwrap_or_else(|error| panic!("docker-compose.yml: a `<<` merge fails: {error}"));
        let services = document
            .get("services")
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_else(|| panic!("docker-compose.yml has no `services` mapping"));
        Self { text, services }
    }

    fn service_names(&self) -> BTreeSet<String> {
        self.services
            .keys()
            .map(|key| scalar_text(key).unwrap_or_else(|| panic!("a service name is {key:?}")))
            .collect()
    }

    fn has_service(&self, name: &str) -> bool {
        self.services.contains_key(name)
    }

    fn service(&self, name: &str) -> &Mapping {
        self.services
            .get(name)
            .and_then(Value::as_mapping)
            .unwrap_or_else(|| panic!("docker-compose.yml has no service `{name}`"))
    }

    /// The service's environment (map or `KEY=VALUE` list syntax); `None` for a variable
    /// given without a value (Compose then passes the host's value through).
    fn environment(&self, service: &str) -> Vec<(String, Option<String>)> {
        let Some(environment) = self.service(service).get("environment") else {
            return Vec::new();
        };
        match environment {
            Value::Mapping(map) => map
                .iter()
                .map(|(key, value)| {
                    let key = scalar_text(key).unwrap_or_else(|| {
                        panic!("service `{service}`: an environment key is {key:?}")
                    });
                    let value = if value.is_null() {
                        None
                    } else {
                        Some(scalar_text(value).unwrap_or_else(|| {
                            panic!("service `{service}`, {key}: the value is not a scalar")
                        }))
                    };
                    (key, value)
                })
                .collect(),
            Value::Sequence(items) => items
                .iter()
                .map(|item| {
                    let item = item.as_str().unwrap_or_else(|| {
                        panic!("service `{service}`: environment item {item:?} is not a string")
                    });
                    match item.split_once('=') {
                        Some((key, value)) => (key.to_owned(), Some(value.to_owned())),
                        None => (item.to_owned(), None),
                    }
                })
                .collect(),
            other => panic!("service `{service}`: `environment` is {other:?}"),
        }
    }

    /// The value of `variable` in the service's environment; `None` when unset.
    fn env(&self, service: &str, variable: &str) -> Option<String> {
        let mut found = self
            .environment(service)
            .into_iter()
            .filter(|(key, _)| key == variable);
        let (_, value) = found.next()?;
        assert!(
            found.next().is_none(),
            "service `{service}`: {variable} is set twice"
        );
        Some(value.unwrap_or_else(|| {
            panic!(
                "service `{service}`, {variable}: set without a value, so it would come from \
                 the host's environment; give it a value in docker-compose.yml"
            )
        }))
    }

    /// The services in `depends_on` (list or map syntax) with their `condition`, if any.
    fn depends_on(&self, service: &str) -> Vec<(String, Option<String>)> {
        match self.service(service).get("depends_on") {
            None => Vec::new(),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|item| {
                    let name = scalar_text(item).unwrap_or_else(|| {
                        panic!("service `{service}`: depends_on item {item:?} is not a name")
                    });
                    (name, None)
                })
                .collect(),
            Some(Value::Mapping(map)) => map
                .iter()
                .map(|(name, options)| {
                    let name = scalar_text(name).unwrap_or_else(|| {
                        panic!("service `{service}`: depends_on key {name:?} is not a name")
                    });
                    let condition = options
                        .get("condition")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    (name, condition)
                })
                .collect(),
            Some(other) => panic!("service `{service}`: `depends_on` is {other:?}"),
        }
    }

    /// The service's published ports as `(host port, container port)`; the host port is
    /// `None` when Docker picks one.
    fn ports(&self, service: &str) -> Vec<(Option<u16>, u16)> {
        let Some(ports) = self.service(service).get("ports") else {
            return Vec::new();
        };
        let ports = ports
            .as_sequence()
            .unwrap_or_else(|| panic!("service `{service}`: `ports` is not a list"));
        ports
            .iter()
            .map(|entry| {
                parse_port(entry)
                    .unwrap_or_else(|| panic!("service `{service}`: port entry {entry:?}"))
            })
            .collect()
    }

    /// The service's command as a list of words.
    fn command(&self, service: &str) -> Vec<String> {
        match self.service(service).get("command") {
            None => Vec::new(),
            Some(Value::String(line)) => line.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Sequence(words)) => words
                .iter()
                .map(|word| {
                    scalar_text(word).unwrap_or_else(|| {
                        panic!("service `{service}`: command word {word:?} is not a string")
                    })
                })
                .collect(),
            Some(other) => panic!("service `{service}`: `command` is {other:?}"),
        }
    }
}

/// A YAML scalar as the text Compose would use.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// One `ports` entry: short syntax `[IP:][HOST:]CONTAINER[/PROTOCOL]` or long syntax with
/// `target` and `published`.
fn parse_port(entry: &Value) -> Option<(Option<u16>, u16)> {
    if let Some(map) = entry.as_mapping() {
        let target = u16::try_from(map.get("target")?.as_u64()?).ok()?;
        let published = match map.get("published") {
            None => None,
            Some(value) => Some(scalar_text(value)?.parse().ok()?),
        };
        return Some((published, target));
    }
    let text = scalar_text(entry)?;
    let without_protocol = text.split('/').next()?;
    let mut parts = without_protocol.rsplit(':');
    let target = parts.next()?.parse().ok()?;
    let published = match parts.next() {
        Some(host) => Some(host.parse().ok()?),
        None => None,
    };
    Some((published, target))
}

// ---------------------------------------------------------------------------------------------
// URLs and the services they name
// ---------------------------------------------------------------------------------------------

/// The backend a broker URL names: the compiled-in backend that answers its scheme, else the
/// backend its scheme belongs to among those `taskoverflow` does not build yet.
fn broker_backend(url: &str) -> Result<&'static str, String> {
    let parts = UrlParts::parse(url).map_err(|error| format!("does not parse: {error}"))?;
    if let Ok(factory) = compiled_in().factory(UrlKind::Broker, url) {
        return Ok(factory.backend());
    }
    match parts.scheme() {
        "amqp" | "amqps" | "pyamqp" => Ok("amqp"),
        "sqs" => Ok("sqs"),
        "kafka" | "confluentkafka" => Ok("kafka"),
        other => Err(format!(
            "has the scheme `{other}`, which no backend answers"
        )),
    }
}

/// The hosts a broker or result-backend URL connects to, or why it cannot be used between
/// containers. A URL of a compiled-in backend must also be accepted by that backend.
fn service_hosts(kind: UrlKind, url: &str) -> Result<Vec<String>, String> {
    let backends = compiled_in();
    let parts = UrlParts::parse(url).map_err(|error| format!("does not parse: {error}"))?;
    match backends.factory(kind, url) {
        Ok(factory) if factory.in_process() => {
            return Err(format!(
                "is the in-process {kind}, which a separate container cannot reach"
            ));
        }
        Ok(_) => {}
        Err(error) if kind == UrlKind::ResultBackend => {
            return Err(format!("is refused: {error}"));
        }
        Err(_) => {
            broker_backend(url)?;
        }
    }
    if parts.scheme() == "sqs" {
        let endpoint = url::Url::parse(url)
            .ok()
            .and_then(|parsed| {
                parsed
                    .query_pairs()
                    .find(|(name, _)| name == "endpoint_url")
                    .map(|(_, value)| value.into_owned())
            })
            .ok_or_else(|| {
                "has no endpoint_url, so it would go to AWS itself; point it at the SQS \
                 emulator service of this file"
                    .to_owned()
            })?;
        return Ok(vec![host_of(&endpoint)?]);
    }
    let hosts = parts
        .hosts(1)
        .map_err(|error| format!("does not parse: {error}"))?;
    Ok(hosts.into_iter().map(|h| h.host).collect())
}

/// The host a todo-database URL connects to (none for SQLite, which is a file).
fn database_hosts(url: &str) -> Result<Vec<String>, String> {
    match StoreLocation::from_url(url).map_err(|error| format!("does not parse: {error}"))? {
        StoreLocation::Postgres(url) => Ok(vec![host_of(&url)?]),
        StoreLocation::Memory | StoreLocation::SqliteFile(_) => Ok(Vec::new()),
    }
}

fn host_of(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|error| format!("`{url}` is not a URL: {error}"))?;
    parsed
        .host_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("`{url}` names no host"))
}

/// The hosts the URL in `variable` connects to.
fn hosts_of(variable: &str, url: &str) -> Result<Vec<String>, String> {
    match variable {
        BROKER => service_hosts(UrlKind::Broker, url),
        RESULTS => service_hosts(UrlKind::ResultBackend, url),
        DATABASE => database_hosts(url),
        other => unreachable!("{other} is not a URL variable"),
    }
}

/// Checks that `url` (from `variable` at `place`) parses and names services of the file;
/// returns the services it names.
fn check_url(compose: &ComposeFile, place: &str, variable: &str, url: &str) -> Vec<String> {
    let hosts = hosts_of(variable, url)
        .unwrap_or_else(|problem| panic!("{place}, {variable}=`{url}` {problem}"));
    for host in &hosts {
        assert!(
            compose.has_service(host),
            "{place}, {variable}=`{url}`: host `{host}` is not a service of docker-compose.yml \
             (services: {:?})",
            compose.service_names()
        );
    }
    hosts
}

/// Checks that the broker pairs with a result store `taskoverflow` accepts, and is not the
/// in-process one.
fn check_combination(place: &str, broker: &str, result_backend: Option<&str>) {
    let settings = QueueSettings {
        broker_url: Some(broker.to_owned()),
        result_backend: result_backend.map(str::to_owned),
        ..QueueSettings::default()
    };
    let backends = compiled_in();
    if backends.factory(UrlKind::Broker, broker).is_err() {
        // A broker of a backend taskoverflow does not build yet keeps no results (SQS,
        // RabbitMQ, Kafka): the file must pair it with a result store taskoverflow accepts.
        let results = result_backend.unwrap_or_else(|| {
            panic!("{place}: {BROKER}=`{broker}` keeps no task results; the file sets no {RESULTS}")
        });
        if let Err(error) = backends.factory(UrlKind::ResultBackend, results) {
            panic!("{place}: {RESULTS}=`{results}` is refused by taskoverflow: {error}");
        }
        return;
    }
    if let Err(error) = settings.result_backend_url(&backends) {
        let results = result_backend.map_or_else(
            || format!("without {RESULTS}"),
            |url| format!("with {RESULTS}=`{url}`"),
        );
        panic!("{place}: {BROKER}=`{broker}` {results} is refused by taskoverflow: {error}");
    }
    let in_process = settings
        .is_in_process(&backends)
        .unwrap_or_else(|error| panic!("{place}, {BROKER}=`{broker}`: {error}"));
    assert!(
        !in_process,
        "{place}, {BROKER}=`{broker}`: the in-process broker cannot be shared by app and worker"
    );
}

// ---------------------------------------------------------------------------------------------
// The commented alternatives
// ---------------------------------------------------------------------------------------------

/// A URL setting found in a comment, as `#\s*(VARIABLE)[=:]\s*(\S+)` finds it.
#[derive(Debug)]
struct CommentedSetting {
    /// 1-based line number.
    line: usize,
    /// The service or top-level block the comment sits in.
    block: String,
    variable: &'static str,
    separator: char,
    value: String,
}

impl CommentedSetting {
    fn place(&self) -> String {
        format!(
            "docker-compose.yml line {} (commented alternative in `{}`)",
            self.line, self.block
        )
    }
}

/// Every `# VARIABLE: value` or `# VARIABLE=value` of a URL variable in `line`.
fn settings_in_line(line: &str) -> Vec<(&'static str, char, String)> {
    let mut found = Vec::new();
    for (hash, _) in line.match_indices('#') {
        let rest = line[hash + 1..].trim_start();
        for variable in URL_VARIABLES {
            let Some(after_name) = rest.strip_prefix(variable) else {
                continue;
            };
            let mut chars = after_name.chars();
            let Some(separator @ ('=' | ':')) = chars.next() else {
                continue;
            };
            let value: String = chars
                .as_str()
                .trim_start()
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            if !value.is_empty() {
                found.push((variable, separator, value));
            }
        }
    }
    found
}

/// The commented URL settings, grouped into alternatives: the settings of one run of
/// consecutive comment lines form one alternative.
fn commented_alternatives(text: &str) -> Vec<Vec<CommentedSetting>> {
    let mut alternatives = Vec::new();
    let mut current: Vec<CommentedSetting> = Vec::new();
    let mut top_level = String::new();
    let mut block = String::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let is_comment = trimmed.starts_with('#');
        if !is_comment {
            if !current.is_empty() {
                alternatives.push(std::mem::take(&mut current));
            }
            // Track where we are: a top-level key, or a service under `services:`.
            let indent = line.len() - trimmed.len();
            if let Some((key, _)) = trimmed.split_once(':') {
                if indent == 0 && !trimmed.is_empty() {
                    top_level = key.trim().to_owned();
                    block.clone_from(&top_level);
                } else if indent == 2 && top_level == "services" {
                    block = format!("services.{}", key.trim());
                }
            }
        }
        for (variable, separator, value) in settings_in_line(line) {
            current.push(CommentedSetting {
                line: index + 1,
                block: block.clone(),
                variable,
                separator,
                value,
            });
        }
        if !is_comment && !current.is_empty() {
            alternatives.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        alternatives.push(current);
    }
    alternatives
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn depends_on_of_app_and_worker_names_services_of_the_file() {
    let compose = ComposeFile::load();
    for service in OUR_SERVICES {
        let dependencies = compose.depends_on(service);
        assert!(
            !dependencies.is_empty(),
            "service `{service}`: depends_on is empty"
        );
        for (dependency, _) in dependencies {
            assert!(
                compose.has_service(&dependency),
                "service `{service}`, depends_on: `{dependency}` is not a service of \
                 docker-compose.yml (services: {:?})",
                compose.service_names()
            );
        }
    }
}

#[test]
fn app_publishes_port_6400_and_listens_on_all_interfaces() {
    let compose = ComposeFile::load();
    assert_eq!(
        compose.env("app", "HOST").as_deref(),
        Some("0.0.0.0"),
        "service `app`, HOST: must be 0.0.0.0, or the API only answers inside its container"
    );
    assert_eq!(
        compose.env("app", "PORT").as_deref(),
        Some("6400"),
        "service `app`, PORT: the contract's port is 6400"
    );
    let ports = compose.ports("app");
    assert!(
        ports.contains(&(Some(6400), 6400)),
        "service `app`, ports: 6400 is not published as 6400 (ports: {ports:?})"
    );
}

#[test]
fn active_urls_parse_and_point_at_services_of_the_file() {
    let compose = ComposeFile::load();
    let mut checked = 0;
    for service in OUR_SERVICES {
        for variable in URL_VARIABLES {
            if let Some(url) = compose.env(service, variable) {
                check_url(&compose, &format!("service `{service}`"), variable, &url);
                checked += 1;
            }
        }
    }
    assert!(
        compose.env("app", DATABASE).is_some(),
        "service `app`, {DATABASE}: unset, so the todos would live in the container's SQLite \
         file instead of the `database` service"
    );
    // Broker and database of app, broker of worker at least.
    assert!(checked >= 3, "only {checked} URLs found in app and worker");
}

#[test]
fn app_and_worker_use_the_same_broker_result_backend_and_queue() {
    let compose = ComposeFile::load();
    for variable in [BROKER, RESULTS, QUEUE] {
        let app = compose.env("app", variable);
        let worker = compose.env("worker", variable);
        assert_eq!(
            app, worker,
            "{variable}: service `app` has {app:?} but service `worker` has {worker:?}; the \
             worker would never see the API's jobs, or the API never see their results"
        );
    }
}

#[test]
fn active_broker_is_shared_and_paired_with_a_result_store() {
    let compose = ComposeFile::load();
    for service in OUR_SERVICES {
        let broker = compose.env(service, BROKER).unwrap_or_else(|| {
            panic!(
                "service `{service}`, {BROKER}: unset means the in-process broker, which app and \
                 worker containers cannot share"
            )
        });
        let results = compose.env(service, RESULTS);
        check_combination(&format!("service `{service}`"), &broker, results.as_deref());
    }
}

#[test]
fn services_behind_active_urls_are_healthy_before_app_and_worker_start() {
    let compose = ComposeFile::load();
    for service in OUR_SERVICES {
        let dependencies = compose.depends_on(service);
        for variable in URL_VARIABLES {
            let Some(url) = compose.env(service, variable) else {
                continue;
            };
            for host in check_url(&compose, &format!("service `{service}`"), variable, &url) {
                let condition = dependencies
                    .iter()
                    .find(|(name, _)| *name == host)
                    .map(|(_, condition)| condition.as_deref());
                assert_eq!(
                    condition,
                    Some(Some("service_healthy")),
                    "service `{service}`, {variable}: it uses `{host}`, so depends_on must list \
                     `{host}` with condition service_healthy"
                );
                assert!(
                    compose.service(&host).contains_key("healthcheck"),
                    "service `{host}` (used by `{service}` through {variable}) has no \
                     healthcheck, so service_healthy never holds"
                );
            }
        }
    }
}

#[test]
fn commented_alternatives_parse_point_at_services_and_pair_a_result_store() {
    let compose = ComposeFile::load();
    let alternatives = commented_alternatives(&compose.text);
    assert!(
        !alternatives.is_empty(),
        "docker-compose.yml has no commented alternative URLs"
    );
    for alternative in &alternatives {
        for setting in alternative {
            check_url(&compose, &setting.place(), setting.variable, &setting.value);
            if setting.separator == ':' {
                // Uncommented, the line must read back as the same string.
                let line = format!("{}: {}", setting.variable, setting.value);
                let read: Mapping = serde_norway::from_str(&line).unwrap_or_else(|error| {
                    panic!(
                        "{}, {}: uncommented, the line is not valid YAML: {error}",
                        setting.place(),
                        setting.variable
                    )
                });
                assert_eq!(
                    read.get(setting.variable).and_then(Value::as_str),
                    Some(setting.value.as_str()),
                    "{}, {}: uncommented, YAML reads another value; quote it",
                    setting.place(),
                    setting.variable
                );
            }
        }
        let only = |variable: &str| {
            let mut matching = alternative.iter().filter(|s| s.variable == variable);
            let first = matching.next();
            if let Some(second) = matching.next() {
                panic!(
                    "{}, {variable}: set twice in one alternative",
                    second.place()
                );
            }
            first
        };
        let results = only(RESULTS);
        only(DATABASE);
        match only(BROKER) {
            Some(broker) => check_combination(
                &broker.place(),
                &broker.value,
                results.map(|setting| setting.value.as_str()),
            ),
            None => {
                if let Some(results) = results {
                    panic!(
                        "{}, {RESULTS}: an alternative result backend with no {BROKER} next to \
                         it; put the broker it goes with in the same comment block",
                        results.place()
                    );
                }
            }
        }
    }
}

#[test]
fn commented_alternatives_cover_postgres_sqs_rabbitmq_and_kafka() {
    let compose = ComposeFile::load();
    let schemes: BTreeSet<&str> = commented_alternatives(&compose.text)
        .iter()
        .flatten()
        .filter(|setting| setting.variable == BROKER)
        .filter_map(|setting| broker_backend(&setting.value).ok())
        .collect();
    let active: BTreeSet<&str> = compose
        .env("app", BROKER)
        .and_then(|url| broker_backend(&url).ok())
        .into_iter()
        .collect();
    let offered: BTreeSet<&str> = schemes.union(&active).copied().collect();
    let missing: Vec<&str> = ["redis", "postgres", "sqs", "amqp", "kafka"]
        .into_iter()
        .filter(|backend| !offered.contains(backend))
        .collect();
    assert!(
        missing.is_empty(),
        "docker-compose.yml offers no {BROKER} (active or commented) for {missing:?} (offered: \
         {offered:?})"
    );
}

#[test]
fn app_and_worker_run_serve_and_worker_from_the_root_dockerfile() {
    let compose = ComposeFile::load();
    for (service, subcommand) in [("app", "serve"), ("worker", "worker")] {
        let build = compose
            .service(service)
            .get("build")
            .unwrap_or_else(|| panic!("service `{service}`: no `build`"));
        let (context, dockerfile) = match build {
            Value::String(context) => (context.clone(), "Dockerfile".to_owned()),
            Value::Mapping(map) => (
                map.get("context")
                    .and_then(Value::as_str)
                    .unwrap_or(".")
                    .to_owned(),
                map.get("dockerfile")
                    .and_then(Value::as_str)
                    .unwrap_or("Dockerfile")
                    .to_owned(),
            ),
            other => panic!("service `{service}`: `build` is {other:?}"),
        };
        let path = repository_root().join(&context).join(&dockerfile);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|error| {
            panic!("service `{service}`: builds from {context}/{dockerfile}, which is unreadable: {error}")
        });
        assert!(
            text.lines()
                .any(|line| line.starts_with("ENTRYPOINT") && line.contains("taskoverflow")),
            "{context}/{dockerfile} (service `{service}`): no ENTRYPOINT running taskoverflow"
        );
        assert_eq!(
            compose.command(service),
            [subcommand],
            "service `{service}`: the command must be `{subcommand}`"
        );
    }
}
