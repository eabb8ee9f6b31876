// TaskOverflow web UI: talks to the JSON API on the same origin. No dependencies.
"use strict";

const API = "/api/v1";
const POLL_INTERVAL_MS = 500;
const POLL_LIMIT_MS = 5 * 60 * 1000;
const UNFINISHED_STATES = new Set(["PENDING", "STARTED", "RETRY"]);

const state = { filter: "all", exportRun: 0 };

const $ = (selector) => document.querySelector(selector);

// --- API -------------------------------------------------------------------------------

class ApiError extends Error {}

async function request(method, url, body) {
  const options = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    throw new ApiError("The server cannot be reached.");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (error) {
    data = null;
  }
  if (!response.ok) {
    const reason = data && typeof data.error === "string" ? data.error : response.statusText;
    throw new ApiError(`${reason} (HTTP ${response.status})`);
  }
  return data;
}

// --- Dates: the API speaks naive UTC, people read local time ----------------------------

function fromApiDate(text) {
  if (!text) return null;
  // At most milliseconds, then mark it as UTC.
  const date = new Date(text.replace(" ", "T").replace(/(\.\d{3})\d*$/, "$1") + "Z");
  return Number.isNaN(date.getTime()) ? null : date;
}

function toApiDate(localValue) {
  if (!localValue) return null;
  const date = new Date(localValue); // a datetime-local value is local time
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

function describeDeadline(date) {
  const text = date.toLocaleString(undefined, {
    weekday: "short", year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit",
  });
  return `Due ${text}`;
}

// --- Messages --------------------------------------------------------------------------

function showMessage(text) {
  const message = $("#message");
  message.textContent = text;
  message.hidden = false;
}

function clearMessage() {
  const message = $("#message");
  message.textContent = "";
  message.hidden = true;
}

async function guarded(action) {
  try {
    clearMessage();
    await action();
  } catch (error) {
    showMessage(error instanceof ApiError ? error.message : `Unexpected error: ${error}`);
  }
}

// --- Todo list -------------------------------------------------------------------------

function listUrl() {
  if (state.filter === "open") return `${API}/todos?completed=false`;
  if (state.filter === "done") return `${API}/todos?completed=true`;
  return `${API}/todos`;
}

async function loadTodos() {
  const todos = await request("GET", listUrl());
  renderTodos(Array.isArray(todos) ? todos : []);
}

function renderTodos(todos) {
  const list = $("#todo-list");
  list.replaceChildren(...todos.map(renderTodo));
  $("#empty-list").hidden = todos.length > 0;
}

function renderTodo(todo) {
  const item = document.createElement("li");
  item.className = "todo-item" + (todo.completed ? " done" : "");
  item.dataset.id = String(todo.id);
  item.dataset.testid = "todo-item";

  const toggle = document.createElement("input");
  toggle.type = "checkbox";
  toggle.className = "todo-toggle";
  toggle.dataset.testid = "todo-toggle";
  toggle.checked = Boolean(todo.completed);
  toggle.setAttribute("aria-label", `Mark "${todo.title}" as ${todo.completed ? "not done" : "done"}`);
  toggle.addEventListener("change", () =>
    guarded(async () => {
      toggle.disabled = true;
      try {
        await request("PUT", `${API}/todos/${todo.id}`, { completed: toggle.checked });
      } finally {
        await loadTodos();
      }
    }),
  );

  const body = document.createElement("div");
  const title = document.createElement("div");
  title.className = "todo-title";
  title.dataset.testid = "todo-title";
  title.textContent = todo.title;
  body.append(title);

  if (todo.description) {
    const description = document.createElement("div");
    description.className = "todo-description";
    description.textContent = todo.description;
    body.append(description);
  }

  const deadline = fromApiDate(todo.deadline_at);
  if (deadline) {
    const due = document.createElement("div");
    const overdue = !todo.completed && deadline.getTime() < Date.now();
    due.className = "todo-deadline" + (overdue ? " overdue" : "");
    due.textContent = describeDeadline(deadline) + (overdue ? " (overdue)" : "");
    due.title = `${todo.deadline_at} UTC`;
    body.append(due);
  }

  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "todo-delete";
  remove.dataset.testid = "todo-delete";
  remove.textContent = "Delete";
  remove.setAttribute("aria-label", `Delete "${todo.title}"`);
  remove.addEventListener("click", () =>
    guarded(async () => {
      remove.disabled = true;
      try {
        await request("DELETE", `${API}/todos/${todo.id}`);
      } finally {
        await loadTodos();
      }
    }),
  );

  item.append(toggle, body, remove);
  return item;
}

async function addTodo(event) {
  event.preventDefault();
  const title = $("#new-title").value.trim();
  if (!title) {
    showMessage("A todo needs a title.");
    return;
  }
  const description = $("#new-description").value.trim();
  const deadlineValue = $("#new-deadline").value;
  const deadline = toApiDate(deadlineValue);
  if (deadlineValue && !deadline) {
    showMessage("That deadline is not a date and time.");
    return;
  }
  const button = $("#add-todo");
  button.disabled = true;
  try {
    await request("POST", `${API}/todos`, {
      title,
      description: description || null,
      deadline_at: deadline,
    });
    $("#new-todo").reset();
    $("#new-title").focus();
    await loadTodos();
  } finally {
    button.disabled = false;
  }
}

function setFilter(filter) {
  state.filter = filter;
  for (const button of document.querySelectorAll(".filter")) {
    const active = button.dataset.filter === filter;
    button.classList.toggle("active", active);
    button.setAttribute("aria-pressed", String(active));
  }
  return loadTodos();
}

// --- Calendar export -------------------------------------------------------------------

function setExportStatus(status, detail) {
  const element = $("#ical-status");
  element.textContent = detail ? `${status}: ${detail}` : status;
  element.className = `status ${status}`;
  element.dataset.status = status;
}

function showDownload(resultUrl) {
  const link = document.createElement("a");
  link.id = "ical-download";
  link.dataset.testid = "ical-download";
  link.download = "todos.ics";
  link.href = resultUrl;
  link.textContent = "Download todos.ics";
  $("#ical-link").replaceChildren(link);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function exportCalendar() {
  const run = ++state.exportRun;
  const button = $("#export-ical");
  button.disabled = true;
  $("#ical-link").replaceChildren();
  try {
    setExportStatus("SUBMITTING");
    const task = await request("POST", `${API}/todos/ical`);
    const started = Date.now();
    let last = null;
    for (;;) {
      const status = await request("GET", task.task_url);
      if (run !== state.exportRun) return;
      if (status.task_status !== last) {
        last = status.task_status;
        setExportStatus(last);
      }
      if (last === "SUCCESS") {
        showDownload(status.result_url);
        return;
      }
      if (last === "FAILURE") {
        setExportStatus("FAILURE", await failureReason(status.result_url));
        return;
      }
      if (!UNFINISHED_STATES.has(last) || Date.now() - started > POLL_LIMIT_MS) {
        setExportStatus(last, "stopped waiting");
        return;
      }
      await sleep(POLL_INTERVAL_MS);
    }
  } catch (error) {
    setExportStatus("FAILURE", error instanceof ApiError ? error.message : String(error));
  } finally {
    if (run === state.exportRun) button.disabled = false;
  }
}

async function failureReason(resultUrl) {
  try {
    await request("GET", resultUrl);
    return "the task failed";
  } catch (error) {
    return error instanceof ApiError ? error.message : "the task failed";
  }
}

// --- Start -----------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("#new-todo").addEventListener("submit", (event) => guarded(() => addTodo(event)));
  for (const button of document.querySelectorAll(".filter")) {
    button.addEventListener("click", () => guarded(() => setFilter(button.dataset.filter)));
  }
  $("#export-ical").addEventListener("click", () => exportCalendar());
  guarded(loadTodos);
});
