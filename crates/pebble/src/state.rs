//! Changes, tasks and notices: the daemon's record of what it did, as Pebble's state.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::util::{now, rfc3339};

/// Task and change statuses, in Pebble's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting to run.
    Do,
    /// Running.
    Doing,
    /// Finished well.
    Done,
    /// Finished in error.
    Error,
    /// Not run because an earlier task in its lane failed.
    Hold,
}

impl Status {
    /// Pebble's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Do => "Do",
            Status::Doing => "Doing",
            Status::Done => "Done",
            Status::Error => "Error",
            Status::Hold => "Hold",
        }
    }

    /// Whether the task is finished.
    pub fn ready(self) -> bool {
        matches!(self, Status::Done | Status::Error | Status::Hold)
    }

    /// Rank in Pebble's change status order (highest wins).
    fn rank(self) -> u8 {
        match self {
            Status::Doing => 6,
            Status::Do => 5,
            Status::Error => 3,
            Status::Done => 1,
            Status::Hold => 0,
        }
    }
}

/// One task of a change.
#[derive(Debug, Clone)]
pub struct Task {
    /// Id.
    pub id: u64,
    /// Kind (`start`, `stop`, `exec`, `perform-check`, …).
    pub kind: String,
    /// Summary.
    pub summary: String,
    /// Status.
    pub status: Status,
    /// Log lines (last 10).
    pub log: Vec<String>,
    /// API data (`exit-code`).
    pub data: Map<String, Value>,
    /// Spawn time.
    pub spawn: OffsetDateTime,
    /// Ready time.
    pub ready: Option<OffsetDateTime>,
}

/// A change: a group of tasks.
#[derive(Debug, Clone)]
pub struct Change {
    /// Id.
    pub id: u64,
    /// Kind.
    pub kind: String,
    /// Summary.
    pub summary: String,
    /// Tasks.
    pub tasks: Vec<Task>,
    /// Change data (`service-names`, `check-name`).
    pub data: Map<String, Value>,
    /// Spawn time.
    pub spawn: OffsetDateTime,
    /// Ready time.
    pub ready: Option<OffsetDateTime>,
    /// Status forced when the change has no tasks.
    pub empty_status: Status,
}

impl Change {
    /// The change's status from its tasks (Pebble's order).
    pub fn status(&self) -> Status {
        if self.tasks.is_empty() {
            return self.empty_status;
        }
        self.tasks
            .iter()
            .map(|t| t.status)
            .max_by_key(|s| s.rank())
            .unwrap_or(Status::Done)
    }

    /// The change's error text, if any task failed.
    pub fn err(&self) -> Option<String> {
        let failed: Vec<String> = self
            .tasks
            .iter()
            .filter(|t| t.status == Status::Error)
            .map(|t| {
                let reason = t
                    .log
                    .iter()
                    .rev()
                    .find_map(|l| l.split_once(" ERROR ").map(|(_, m)| m.to_string()))
                    .unwrap_or_else(|| "failed".into());
                format!("- {} ({reason})", t.summary)
            })
            .collect();
        (!failed.is_empty())
            .then(|| format!("cannot perform the following tasks:\n{}", failed.join("\n")))
    }

    /// The change as the API's JSON.
    pub fn to_json(&self) -> Value {
        let status = self.status();
        let mut out = json!({
            "id": self.id.to_string(),
            "kind": self.kind,
            "summary": self.summary,
            "status": status.as_str(),
            "ready": status.ready(),
            "spawn-time": rfc3339(self.spawn),
            "tasks": self.tasks.iter().map(task_json).collect::<Vec<_>>(),
        });
        if let Some(err) = self.err() {
            out["err"] = json!(err);
        }
        if let Some(t) = self.ready {
            out["ready-time"] = json!(rfc3339(t));
        }
        if !self.data.is_empty() {
            out["data"] = Value::Object(self.data.clone());
        }
        out
    }
}

fn task_json(t: &Task) -> Value {
    let mut out = json!({
        "id": t.id.to_string(),
        "kind": t.kind,
        "summary": t.summary,
        "status": t.status.as_str(),
        "progress": {"label": "", "done": if t.status.ready() {1} else {0}, "total": 1},
        "spawn-time": rfc3339(t.spawn),
    });
    if !t.log.is_empty() {
        out["log"] = json!(t.log);
    }
    if let Some(r) = t.ready {
        out["ready-time"] = json!(rfc3339(r));
    }
    if !t.data.is_empty() {
        out["data"] = Value::Object(t.data.clone());
    }
    out
}

/// A notice.
#[derive(Debug, Clone)]
pub struct Notice {
    /// Id.
    pub id: u64,
    /// Owner uid; None = public.
    pub user_id: Option<u32>,
    /// Type.
    pub r#type: String,
    /// Key.
    pub key: String,
    /// First occurrence.
    pub first: OffsetDateTime,
    /// Last occurrence.
    pub last: OffsetDateTime,
    /// Last time it was repeated (moves only after repeat-after).
    pub last_repeated: OffsetDateTime,
    /// Occurrences.
    pub occurrences: u64,
    /// Last data.
    pub data: BTreeMap<String, String>,
    /// Repeat-after.
    pub repeat_after: Option<Duration>,
    /// Expire-after.
    pub expire_after: Duration,
}

impl Notice {
    /// As the API's JSON.
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "id": self.id.to_string(),
            "user-id": self.user_id,
            "type": self.r#type,
            "key": self.key,
            "first-occurred": rfc3339(self.first),
            "last-occurred": rfc3339(self.last),
            "last-repeated": rfc3339(self.last_repeated),
            "occurrences": self.occurrences,
            "expire-after": crate::util::format_duration(self.expire_after),
        });
        if !self.data.is_empty() {
            out["last-data"] = json!(self.data);
        }
        if let Some(r) = self.repeat_after {
            out["repeat-after"] = json!(crate::util::format_duration(r));
        }
        out
    }
}

/// All changes and notices.
#[derive(Debug, Default)]
pub struct State {
    next_id: u64,
    /// Changes by id.
    pub changes: BTreeMap<u64, Change>,
    /// Notices by id.
    pub notices: BTreeMap<u64, Notice>,
    next_notice: u64,
}

impl State {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Adds a change with tasks `(kind, summary)`; returns the change id and the task ids.
    pub fn new_change(
        &mut self,
        kind: &str,
        summary: &str,
        tasks: &[(String, String)],
        data: Map<String, Value>,
    ) -> (u64, Vec<u64>) {
        let id = self.id();
        let t = now();
        let mut ids = Vec::new();
        let tasks = tasks
            .iter()
            .map(|(k, s)| {
                let tid = self.id();
                ids.push(tid);
                Task {
                    id: tid,
                    kind: k.clone(),
                    summary: s.clone(),
                    status: Status::Do,
                    log: Vec::new(),
                    data: Map::new(),
                    spawn: t,
                    ready: None,
                }
            })
            .collect();
        let change = Change {
            id,
            kind: kind.into(),
            summary: summary.into(),
            tasks,
            data,
            spawn: t,
            ready: None,
            empty_status: Status::Done,
        };
        let empty_ready = change.tasks.is_empty();
        self.changes.insert(id, change);
        if empty_ready {
            if let Some(c) = self.changes.get_mut(&id) {
                c.ready = Some(t);
            }
        }
        self.change_notice(id);
        self.prune();
        (id, ids)
    }

    fn task_mut(&mut self, change: u64, task: u64) -> Option<&mut Task> {
        self.changes
            .get_mut(&change)?
            .tasks
            .iter_mut()
            .find(|t| t.id == task)
    }

    /// Sets a task's status, updating the change's readiness and notices.
    pub fn set_status(&mut self, change: u64, task: u64, status: Status) {
        let before = self.changes.get(&change).map(|c| c.status());
        if let Some(t) = self.task_mut(change, task) {
            t.status = status;
            if status.ready() {
                t.ready = Some(now());
            }
        }
        let Some(c) = self.changes.get_mut(&change) else {
            return;
        };
        let after = c.status();
        if after.ready() && c.ready.is_none() {
            c.ready = Some(now());
        }
        if before != Some(after) {
            self.change_notice(change);
        }
    }

    /// Appends a log line (`INFO` or `ERROR`) to a task, keeping the last 10.
    pub fn log(&mut self, change: u64, task: u64, level: &str, message: &str) {
        if let Some(t) = self.task_mut(change, task) {
            t.log.push(format!("{} {level} {message}", rfc3339(now())));
            if t.log.len() > 10 {
                let extra = t.log.len() - 10;
                t.log.drain(..extra);
            }
        }
    }

    /// Sets a task's API data field.
    pub fn set_data(&mut self, change: u64, task: u64, key: &str, value: Value) {
        if let Some(t) = self.task_mut(change, task) {
            t.data.insert(key.into(), value);
        }
    }

    fn change_notice(&mut self, change: u64) {
        let Some(c) = self.changes.get(&change) else {
            return;
        };
        let mut data = BTreeMap::from([("kind".to_string(), c.kind.clone())]);
        if let Some(Value::String(name)) = c.data.get("check-name") {
            data.insert("check-name".into(), name.clone());
        }
        self.add_notice(None, "change-update", &change.to_string(), data, None);
    }

    /// Records an occurrence of a notice (same user, type and key → one notice).
    pub fn add_notice(
        &mut self,
        user_id: Option<u32>,
        r#type: &str,
        key: &str,
        data: BTreeMap<String, String>,
        repeat_after: Option<Duration>,
    ) -> u64 {
        let t = now();
        if let Some(n) = self
            .notices
            .values_mut()
            .find(|n| n.user_id == user_id && n.r#type == r#type && n.key == key)
        {
            n.occurrences += 1;
            n.last = t;
            let repeat = match n.repeat_after.or(repeat_after) {
                Some(r) => (t - n.last_repeated) >= r,
                None => true,
            };
            if repeat {
                n.last_repeated = t;
            }
            n.data = data;
            if repeat_after.is_some() {
                n.repeat_after = repeat_after;
            }
            return n.id;
        }
        self.next_notice += 1;
        let id = self.next_notice;
        self.notices.insert(
            id,
            Notice {
                id,
                user_id,
                r#type: r#type.into(),
                key: key.into(),
                first: t,
                last: t,
                last_repeated: t,
                occurrences: 1,
                data,
                repeat_after,
                expire_after: Duration::from_secs(7 * 24 * 3600),
            },
        );
        id
    }

    /// Drops ready changes beyond the newest 500 and expired notices.
    fn prune(&mut self) {
        let ready: Vec<u64> = self
            .changes
            .values()
            .filter(|c| c.ready.is_some())
            .map(|c| c.id)
            .collect();
        if ready.len() > 500 {
            for id in &ready[..ready.len() - 500] {
                self.changes.remove(id);
            }
        }
        let t = now();
        self.notices.retain(|_, n| (t - n.last) < n.expire_after);
    }
}
