//! Container logs with a timestamp per line, in the CRI log format the kubelet reads
//! (`2026-01-02T03:04:05.123456789Z stdout F text`; `P` marks a piece of a longer line).
//!
//! The runc shim writes a `file://` stdio URI raw, so nothing records when a line was written.
//! With a `binary://` URI the shim instead starts a logging binary per task, handing it the
//! container's stdout and stderr pipes as fds 3 and 4 and a ready pipe as fd 5 (closed once
//! the logger is set up), with `CONTAINER_ID` and `CONTAINER_NAMESPACE` in its environment.
//! `skiff-agent log-writer FILE` is that binary: it stamps each line as it arrives. It runs
//! under the shim, not the agent, so logs keep flowing while the agent restarts.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;

/// File name suffix of logs in this format (raw `file://` logs end in plain `.log`).
pub const SUFFIX: &str = ".cri.log";

/// Longest piece written as one record; longer lines are split into `P` records, as the
/// kubelet's runtime does, so a reader never holds an unbounded line.
const MAX_RECORD: usize = 16 * 1024;

/// The `binary://` stdio URI that runs `writer` (the agent binary) as the logger of one task.
/// The shim turns each query pair into two arguments, so one pair keeps their order fixed.
pub fn uri(writer: &Path, log_path: &Path) -> String {
    format!(
        "binary://{}?log-writer={}",
        escape(&writer.display().to_string()),
        escape(&log_path.display().to_string())
    )
}

/// Percent-encoding for URI paths and query values (unreserved characters and `/` stay).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The logger: copy fds 3 (stdout) and 4 (stderr) into `path` line by line with timestamps
/// until both are closed (the container's processes are gone).
pub fn run_writer(path: &Path) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let out = Arc::new(Mutex::new(file));
    // SAFETY: the shim passes these descriptors to its logging binary; nothing else here
    // owns them.
    let (stdout, stderr, ready) = unsafe {
        (
            File::from_raw_fd(3),
            File::from_raw_fd(4),
            File::from_raw_fd(5),
        )
    };
    // Closing the ready pipe tells the shim to start the container.
    drop(ready);
    let err_out = out.clone();
    let err_copy = std::thread::spawn(move || copy_stream(stderr, "stderr", &err_out));
    copy_stream(stdout, "stdout", &out)?;
    err_copy
        .join()
        .map_err(|_| anyhow::anyhow!("the stderr copier panicked"))??;
    Ok(())
}

fn copy_stream(mut input: File, stream: &str, out: &Mutex<File>) -> anyhow::Result<()> {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading the container's output"),
        };
        pending.extend_from_slice(&buf[..n]);
        let records = split_records(&mut pending, false);
        write_records(out, stream, &records)?;
    }
    let records = split_records(&mut pending, true);
    write_records(out, stream, &records)
}

/// Complete records taken from the front of `pending`: `(full, text)` for each line (without
/// its newline) and each `MAX_RECORD` piece of a longer one; at `eof`, the rest as a piece.
fn split_records(pending: &mut Vec<u8>, eof: bool) -> Vec<(bool, Vec<u8>)> {
    let mut records = Vec::new();
    let mut start = 0;
    loop {
        let rest = &pending[start..];
        match rest.iter().position(|b| *b == b'\n') {
            Some(i) if i <= MAX_RECORD => {
                records.push((true, rest[..i].to_vec()));
                start += i + 1;
            }
            _ if rest.len() > MAX_RECORD => {
                records.push((false, rest[..MAX_RECORD].to_vec()));
                start += MAX_RECORD;
            }
            _ => break,
        }
    }
    if eof && start < pending.len() {
        records.push((false, pending[start..].to_vec()));
        start = pending.len();
    }
    pending.drain(..start);
    records
}

fn write_records(
    out: &Mutex<File>,
    stream: &str,
    records: &[(bool, Vec<u8>)],
) -> anyhow::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    // RFC 3339 in UTC with nanoseconds, as the CRI log format has it.
    let now = format!("{:.9}", k8s_openapi::jiff::Timestamp::now());
    let mut text = Vec::new();
    for (full, line) in records {
        let tag = if *full { 'F' } else { 'P' };
        text.extend_from_slice(format!("{now} {stream} {tag} ").as_bytes());
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    // One write per batch, under the lock, so stdout and stderr records never interleave
    // within a record.
    let mut file = out.lock().expect("log file lock");
    file.write_all(&text).context("writing the log file")
}

/// A logical line of a CRI-format log: its timestamp and its bytes as the container wrote
/// them (with the newline, unless the output ended without one).
#[derive(Debug, PartialEq)]
pub struct Line<'a> {
    pub timestamp: &'a str,
    pub text: Vec<u8>,
}

/// The complete logical lines of CRI-format `data` (partial records are joined to the full
/// record that ends them), and how many bytes of `data` they cover: a trailing record without
/// its newline is left for a later read.
pub fn parse(data: &[u8]) -> (Vec<Line<'_>>, usize) {
    let mut lines = Vec::new();
    let mut consumed = 0;
    let mut open: Option<Line<'_>> = None;
    let mut pos = 0;
    while let Some(nl) = data[pos..].iter().position(|b| *b == b'\n') {
        let record = &data[pos..pos + nl];
        pos += nl + 1;
        let mut fields = record.splitn(4, |b| *b == b' ');
        let (Some(ts), Some(_stream), Some(tag)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let text = fields.next().unwrap_or_default();
        let timestamp = std::str::from_utf8(ts).unwrap_or_default();
        let line = open.get_or_insert_with(|| Line {
            timestamp,
            text: Vec::new(),
        });
        line.text.extend_from_slice(text);
        if tag == b"F" {
            line.text.push(b'\n');
            lines.extend(open.take());
            consumed = pos;
        }
    }
    // Output that ended without a newline (the logger's last piece at EOF) is complete only
    // when nothing follows it; a reader that follows a running container waits for more.
    (lines, consumed)
}

/// At the end of a finished log: pieces after the last full line, as one line without newline.
pub fn trailing(data: &[u8], consumed: usize) -> Option<Line<'_>> {
    let mut line: Option<Line<'_>> = None;
    for record in data[consumed..].split(|b| *b == b'\n') {
        let mut fields = record.splitn(4, |b| *b == b' ');
        let (Some(ts), Some(_), Some(_)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let l = line.get_or_insert_with(|| Line {
            timestamp: std::str::from_utf8(ts).unwrap_or_default(),
            text: Vec::new(),
        });
        l.text.extend_from_slice(fields.next().unwrap_or_default());
    }
    line
}

/// Render lines as `kubectl logs` shows them, with `--timestamps` when asked.
pub fn render(lines: &[Line<'_>], timestamps: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        if timestamps {
            out.extend_from_slice(l.timestamp.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&l.text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_at_newlines_and_at_the_record_limit() {
        let mut pending = b"one\ntwo\nthr".to_vec();
        let r = split_records(&mut pending, false);
        assert_eq!(r, vec![(true, b"one".to_vec()), (true, b"two".to_vec())]);
        assert_eq!(pending, b"thr");
        pending.extend_from_slice(b"ee\n");
        assert_eq!(
            split_records(&mut pending, false),
            vec![(true, b"three".to_vec())]
        );
        let mut long = vec![b'x'; MAX_RECORD + 10];
        long.push(b'\n');
        let r = split_records(&mut long, false);
        assert_eq!(r.len(), 2);
        assert!(!r[0].0 && r[0].1.len() == MAX_RECORD);
        assert!(r[1].0 && r[1].1.len() == 10);
        let mut tail = b"no newline".to_vec();
        assert!(split_records(&mut tail, false).is_empty());
        assert_eq!(
            split_records(&mut tail, true),
            vec![(false, b"no newline".to_vec())]
        );
        assert!(tail.is_empty());
    }

    #[test]
    fn parse_joins_partial_records_and_keeps_unfinished_ones() {
        let data = b"2026-01-01T00:00:00.1Z stdout F hello\n\
                     2026-01-01T00:00:01.1Z stderr P par\n\
                     2026-01-01T00:00:01.2Z stderr F tial\n\
                     2026-01-01T00:00:02.1Z stdout F \n\
                     2026-01-01T00:00:03.1Z stdout P unfinished\n";
        let (lines, consumed) = parse(data);
        assert_eq!(
            lines,
            vec![
                Line {
                    timestamp: "2026-01-01T00:00:00.1Z",
                    text: b"hello\n".to_vec()
                },
                Line {
                    timestamp: "2026-01-01T00:00:01.1Z",
                    text: b"partial\n".to_vec()
                },
                Line {
                    timestamp: "2026-01-01T00:00:02.1Z",
                    text: b"\n".to_vec()
                },
            ]
        );
        let rest = trailing(data, consumed).unwrap();
        assert_eq!(rest.text, b"unfinished");
        assert_eq!(
            render(&lines[..2], true),
            b"2026-01-01T00:00:00.1Z hello\n2026-01-01T00:00:01.1Z partial\n"
        );
        assert_eq!(render(&lines, false), b"hello\npartial\n\n");
    }

    #[test]
    fn uri_escapes_the_paths() {
        assert_eq!(
            uri(
                Path::new("/usr/bin/skiff-agent"),
                Path::new("/var/x y/0.cri.log")
            ),
            "binary:///usr/bin/skiff-agent?log-writer=/var/x%20y/0.cri.log"
        );
    }
}
