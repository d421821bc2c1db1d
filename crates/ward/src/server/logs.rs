//! `debug-log`: tails every unit's log file under `WARD_HOME/logs`.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::Stream;

/// Lines shown per file when not replaying, as `juju debug-log` does.
const LAST_LINES: usize = 10;

/// Follows the unit logs.
pub(crate) struct Tail {
    dir: PathBuf,
    include: Vec<String>,
    replay: bool,
    follow: bool,
    offsets: HashMap<PathBuf, u64>,
    queue: VecDeque<String>,
    scans: u64,
}

impl Tail {
    /// A tail of `dir`'s `*.log` files, only of entities in `include` (all if empty).
    pub(crate) fn new(dir: PathBuf, include: Vec<String>, replay: bool, follow: bool) -> Tail {
        Tail {
            dir,
            include: include.iter().map(|s| normalise(s)).collect(),
            replay,
            follow,
            offsets: HashMap::new(),
            queue: VecDeque::new(),
            scans: 0,
        }
    }

    /// Whether a unit tag (`unit-app-0`) passes the include filter: a unit
    /// (`app/0` or `unit-app-0`) or an application (`app`).
    fn included(&self, tag: &str) -> bool {
        self.include.is_empty()
            || self.include.iter().any(|i| {
                tag == i
                    || tag
                        .strip_prefix(i.as_str())
                        .and_then(|rest| rest.strip_prefix('-'))
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
    }

    fn scan(&mut self) {
        let first = self.scans == 0;
        self.scans += 1;
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        files.sort();
        for p in files {
            let tag = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !self.included(&tag) {
                continue;
            }
            let Ok(mut f) = std::fs::File::open(&p) else {
                continue;
            };
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let start = match self.offsets.get(&p) {
                Some(o) if *o <= len => *o,
                Some(_) => 0,
                None if first && !self.replay => last_lines_offset(&mut f, len),
                None => 0,
            };
            if len <= start {
                self.offsets.insert(p, start);
                continue;
            }
            let mut buf = Vec::new();
            if f.seek(SeekFrom::Start(start)).is_err()
                || f.take(len - start).read_to_end(&mut buf).is_err()
            {
                continue;
            }
            // Only whole lines; the rest waits for its newline.
            let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
                self.offsets.insert(p, start);
                continue;
            };
            for line in String::from_utf8_lossy(&buf[..end]).lines() {
                let line = if line.starts_with("unit-") {
                    line.to_string()
                } else {
                    format!("{tag} {line}")
                };
                self.queue.push_back(line);
            }
            self.offsets.insert(p, start + end as u64 + 1);
        }
    }

    /// The lines, as a body stream; ends after one pass unless following.
    pub(crate) fn stream(self) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures_util::stream::unfold(self, |mut t| async move {
            loop {
                if let Some(l) = t.queue.pop_front() {
                    return Some((Ok(Bytes::from(l + "\n")), t));
                }
                if t.scans > 0 && !t.follow {
                    return None;
                }
                if t.scans > 0 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                t.scan();
            }
        })
    }
}

fn normalise(s: &str) -> String {
    if s.starts_with("unit-") {
        s.to_string()
    } else if s.contains('/') {
        format!("unit-{}", s.replace('/', "-"))
    } else {
        format!("unit-{s}")
    }
}

/// Where the last [`LAST_LINES`] lines of a file start.
fn last_lines_offset(f: &mut std::fs::File, len: u64) -> u64 {
    let from = len.saturating_sub(64 * 1024);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut buf).is_err() {
        return len;
    }
    let mut newlines = 0;
    for (i, b) in buf.iter().enumerate().rev() {
        if *b == b'\n' && i + 1 < buf.len() {
            newlines += 1;
            if newlines == LAST_LINES {
                return from + i as u64 + 1;
            }
        }
    }
    from
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_matches_units_and_applications() {
        let t = Tail::new(
            PathBuf::new(),
            vec!["greeter".into(), "db/1".into()],
            false,
            false,
        );
        assert!(t.included("unit-greeter-0"));
        assert!(t.included("unit-greeter-12"));
        assert!(!t.included("unit-greeter-x-0"));
        assert!(t.included("unit-db-1"));
        assert!(!t.included("unit-db-2"));
    }

    #[test]
    fn one_pass_shows_the_last_lines_then_new_ones() {
        let d = tempfile::tempdir().unwrap();
        let text: String = (0..30).map(|i| format!("unit-a-0 line {i}\n")).collect();
        std::fs::write(d.path().join("unit-a-0.log"), text).unwrap();
        let mut t = Tail::new(d.path().into(), vec![], false, true);
        t.scan();
        assert_eq!(t.queue.len(), LAST_LINES);
        assert_eq!(t.queue.front().unwrap(), "unit-a-0 line 20");
        t.queue.clear();
        std::fs::write(d.path().join("unit-b-0.log"), "partial").unwrap();
        t.scan();
        assert!(t.queue.is_empty(), "no newline yet");
        std::fs::write(d.path().join("unit-b-0.log"), "partial\n").unwrap();
        t.scan();
        assert_eq!(t.queue.pop_front().unwrap(), "unit-b-0 partial");
    }
}
