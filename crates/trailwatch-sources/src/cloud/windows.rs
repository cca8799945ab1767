//! Windows Security log logon/logoff events: JSON (winlogbeat, EVTX-to-JSON such as the `evtx`
//! crate's output, NXLog/Logstash flat records) and XML event exports (`<Event>…</Event>`,
//! optionally wrapped in `<Events>`). Direct `.evtx` reading is not implemented here: convert
//! with `evtx_dump -o jsonl` and use [`parse_json`].
//!
//! | Event ID | `trace_name` | `trace_rating` | user |
//! |---|---|---|---|
//! | 4624 logon | `login` | `normal` | `TargetUserName` / `TargetDomainName` |
//! | 4625 failed logon | `loginfailed` (`code` 401; `Status`/`SubStatus` in `message`) | `warning` | Target* |
//! | 4634 logoff, 4647 user-initiated logoff | `logout` | `normal` | Target* |
//! | 4648 explicit credentials | `explicitCredentialLogon` (not `login`: the target host logs its own 4624) | `normal` | Target* (the credentials used); the subject in `message` |
//! | 4672 special privileges | `assignPrivileges` (`PrivilegeList` in `message`) | `normal` | `SubjectUserName` / `SubjectDomainName` |
//!
//! Every other event ID is counted in [`Parsed::skipped`]. `service_type` `WINDOWS`,
//! `resource_type` `host`, `resource_name` the computer (`Computer`, `winlog.computer_name`,
//! `Hostname`, `host.name`), `resource_id` `TargetLogonId`/`SubjectLogonId`. `source_ip` from
//! `IpAddress`: `-`/empty/invalid → absent, loopback (`::1`, `127.0.0.1`) kept as is (it is the
//! truth: a local logon), an IPv6 zone suffix (`%12`) is dropped. `trace_type`: logon types
//! 2, 7, 10, 11 (interactive, unlock, remote interactive, cached) → `ConsoleAction`; 0, 4, 5
//! (system, batch, service) → `SystemAction`; others → `ApiCall`. The logon type is also named in
//! `message`. `trace_id`: stable hash of computer, channel and record id (or of the whole record
//! when it has no record id).

use quick_xml::Reader;
use quick_xml::events::Event;
use serde_json::{Map, Value};

use super::common::{
    MAX_RECORD_BYTES, TraceBuilder, ip_or_none, json_lines, parse_time_ms, problem, short,
    stable_id, starts_array, text,
};
use crate::Parsed;

/// One event, whichever format it came in.
#[derive(Debug, Default)]
struct WinEvent {
    event_id: Option<u32>,
    time: Option<String>,
    computer: Option<String>,
    channel: Option<String>,
    record_id: Option<String>,
    data: Vec<(String, String)>,
}

impl WinEvent {
    fn get(&self, name: &str) -> Option<&str> {
        self.data
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty() && *v != "-")
    }
}

/// Parse Windows Security events as JSON: one object per line, or a JSON array of objects.
/// Problems carry the line number (JSON Lines) or the 1-based array index.
pub fn parse_json(text: &str) -> Parsed {
    let mut out = Parsed::default();
    let body = text.trim_start_matches('\u{feff}');
    if starts_array(body) {
        match serde_json::from_str::<Vec<&serde_json::value::RawValue>>(body) {
            Ok(items) => {
                for (i, raw) in items.iter().enumerate() {
                    json_record(&mut out, i as u64 + 1, raw.get());
                }
            }
            Err(e) => problem(&mut out, 1, format!("not a JSON array of events: {e}")),
        }
        return out;
    }
    for (line, l) in json_lines(body) {
        json_record(&mut out, line, l);
    }
    out
}

/// Windows Security events from a binary `.evtx` file. Each record is rendered to JSON by the
/// `evtx` crate — the shape `evtx_dump -o jsonl` writes — and mapped exactly as [`parse_json`]
/// maps it (same traces, same trace ids). Problems carry the record's 1-based position in the
/// file; a record the crate cannot read is a problem and the others still come out. Pure: the
/// file's bytes in.
pub fn parse_evtx(bytes: &[u8]) -> Parsed {
    let mut out = Parsed::default();
    let mut parser = match evtx::EvtxParser::from_buffer(bytes.to_vec()) {
        Ok(p) => p,
        Err(e) => {
            problem(&mut out, 1, format!("not an EVTX file: {e}"));
            return out;
        }
    };
    for (i, record) in parser.records_json_value().enumerate() {
        let index = i as u64 + 1;
        match record {
            Ok(r) => json_record(&mut out, index, &r.data.to_string()),
            Err(e) => problem(&mut out, index, format!("EVTX record cannot be read: {e}")),
        }
    }
    out
}

fn json_record(out: &mut Parsed, line: u64, raw: &str) {
    if raw.len() > MAX_RECORD_BYTES {
        problem(
            out,
            line,
            format!(
                "record of {} bytes exceeds the {MAX_RECORD_BYTES}-byte limit",
                raw.len()
            ),
        );
        return;
    }
    let v: Value = match serde_json::from_str(raw) {
        Ok(v) => v,
        Err(e) => return problem(out, line, format!("invalid JSON: {e}")),
    };
    let Value::Object(obj) = &v else {
        return problem(out, line, format!("not a JSON object: {}", short(raw)));
    };
    let ev = from_json(obj);
    finish(out, line, ev, raw.trim());
}

fn event_id(v: Option<&Value>) -> Option<u32> {
    match v? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        Value::Object(m) => event_id(m.get("#text").or(m.get("value"))),
        _ => None,
    }
}

fn obj(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v?.as_object()
}

fn data_pairs(m: &Map<String, Value>) -> Vec<(String, String)> {
    m.iter()
        .filter(|(k, _)| !k.starts_with('#'))
        .filter_map(|(k, v)| text(Some(v)).map(|s| (k.clone(), s)))
        .collect()
}

fn from_json(o: &Map<String, Value>) -> WinEvent {
    let mut ev = WinEvent::default();
    // EVTX-to-JSON: {"Event": {"System": …, "EventData": …}} or without the wrapper.
    let event = obj(o.get("Event")).unwrap_or(o);
    if let Some(sys) = obj(event.get("System")) {
        ev.event_id = event_id(sys.get("EventID"));
        ev.time = obj(sys.get("TimeCreated"))
            .and_then(|t| {
                text(
                    obj(t.get("#attributes"))
                        .and_then(|a| a.get("SystemTime"))
                        .or(t.get("SystemTime")),
                )
            })
            .or_else(|| text(sys.get("TimeCreated")));
        ev.computer = text(sys.get("Computer"));
        ev.channel = text(sys.get("Channel"));
        ev.record_id = text(sys.get("EventRecordID"));
        if let Some(d) = obj(event.get("EventData")) {
            ev.data = data_pairs(d);
        }
        return ev;
    }
    // winlogbeat: {"@timestamp", "winlog": {"event_id", "computer_name", "record_id",
    // "channel", "event_data": {…}}, "event": {"code"}, "host": {"name"}}.
    if let Some(w) = obj(o.get("winlog")) {
        ev.event_id = event_id(w.get("event_id"))
            .or_else(|| event_id(obj(o.get("event")).and_then(|e| e.get("code"))));
        ev.time = text(o.get("@timestamp"));
        ev.computer = text(w.get("computer_name"))
            .or_else(|| text(obj(o.get("host")).and_then(|h| h.get("name"))));
        ev.channel = text(w.get("channel"));
        ev.record_id = text(w.get("record_id"));
        if let Some(d) = obj(w.get("event_data")) {
            ev.data = data_pairs(d);
        }
        return ev;
    }
    // Flat (NXLog / Logstash, e.g. the OTRF datasets): everything at the top level;
    // `@timestamp` is UTC, `EventTime` local time without a zone (used only as a fallback).
    ev.event_id = event_id(o.get("EventID").or(o.get("event_id")));
    ev.time = text(o.get("@timestamp"))
        .or_else(|| text(o.get("TimeCreated")))
        .or_else(|| text(o.get("EventTime")));
    ev.computer = text(o.get("Hostname"))
        .or_else(|| text(o.get("Computer")))
        .or_else(|| text(o.get("computer_name")));
    ev.channel = text(o.get("Channel"));
    ev.record_id = text(o.get("RecordNumber")).or_else(|| text(o.get("EventRecordID")));
    ev.data = data_pairs(o);
    ev
}

/// Parse an XML export: `<Event>` elements, at any depth (usually under `<Events>`). Problems
/// carry the line where the event (or the XML error) starts.
pub fn parse_xml(text: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut reader = Reader::from_str(text);
    let mut lines = Lines {
        text,
        at: 0,
        line: 1,
    };
    let mut cur: Option<(usize, WinEvent)> = None; // (start byte, event)
    let mut stack: Vec<String> = Vec::new();
    let mut data_name: Option<String> = None;
    let mut text_buf = String::new();
    loop {
        let before = reader.buffer_position() as usize;
        let ev = match reader.read_event() {
            Ok(e) => e,
            Err(e) => {
                let at = cur.as_ref().map_or(before, |(s, _)| *s);
                problem(
                    &mut out,
                    lines.of(at),
                    format!("invalid XML: {}", short(&e.to_string())),
                );
                return out;
            }
        };
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if name == "Event" && cur.is_none() {
                    // `before` may point at whitespace preceding the tag.
                    let start = text[before..].find('<').map_or(before, |i| before + i);
                    cur = Some((start, WinEvent::default()));
                    if empty {
                        problem(&mut out, lines.of(start), "empty <Event/> element");
                        cur = None;
                    } else {
                        stack.clear();
                        stack.push(name);
                    }
                    continue;
                }
                if let Some((_, w)) = cur.as_mut() {
                    for a in e.attributes().flatten() {
                        let key = a.key.local_name();
                        let val = a
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .map(|c| c.into_owned())
                            .unwrap_or_default();
                        match (name.as_str(), key.as_ref()) {
                            ("TimeCreated", b"SystemTime") => w.time = Some(val),
                            ("Data", b"Name") => data_name = Some(val),
                            _ => {}
                        }
                    }
                    if !empty {
                        stack.push(name);
                        text_buf.clear();
                    } else if name == "Data"
                        && let Some(n) = data_name.take()
                    {
                        w.data.push((n, String::new()));
                    }
                }
            }
            Event::Text(t) if cur.is_some() => match t.xml10_content() {
                Ok(s) => text_buf.push_str(&s),
                Err(_) => text_buf.push_str(&String::from_utf8_lossy(&t)),
            },
            Event::GeneralRef(r) if cur.is_some() => {
                let name = String::from_utf8_lossy(&r).into_owned();
                match name.as_str() {
                    "amp" => text_buf.push('&'),
                    "lt" => text_buf.push('<'),
                    "gt" => text_buf.push('>'),
                    "quot" => text_buf.push('"'),
                    "apos" => text_buf.push('\''),
                    _ => {
                        if let Ok(Some(c)) = r.resolve_char_ref() {
                            text_buf.push(c);
                        }
                    }
                }
            }
            Event::CData(c) if cur.is_some() => {
                text_buf.push_str(&String::from_utf8_lossy(&c));
            }
            Event::End(_) => {
                let Some((start, w)) = cur.as_mut() else {
                    continue;
                };
                let name = stack.pop().unwrap_or_default();
                let value = text_buf.trim().to_owned();
                text_buf.clear();
                match name.as_str() {
                    "EventID" => w.event_id = value.parse().ok(),
                    "Computer" => w.computer = Some(value),
                    "Channel" => w.channel = Some(value),
                    "EventRecordID" => w.record_id = Some(value),
                    "Data" => {
                        if let Some(n) = data_name.take() {
                            w.data.push((n, value));
                        }
                    }
                    "Event" if stack.is_empty() => {
                        let end = reader.buffer_position() as usize;
                        let start = *start;
                        let raw = &text[start..end.min(text.len())];
                        let (_, w) = cur.take().unwrap_or_default();
                        let line = lines.of(start);
                        if raw.len() > MAX_RECORD_BYTES {
                            problem(&mut out, line, "event exceeds the record size limit");
                        } else {
                            finish(&mut out, line, w, raw);
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some((start, _)) = cur {
        problem(
            &mut out,
            lines.of(start),
            "truncated XML: <Event> not closed",
        );
    }
    out
}

/// Line numbers by byte offset, counted incrementally (offsets mostly increase).
struct Lines<'a> {
    text: &'a str,
    at: usize,
    line: u64,
}

impl Lines<'_> {
    fn of(&mut self, byte: usize) -> u64 {
        let b = byte.min(self.text.len());
        if b < self.at {
            self.at = 0;
            self.line = 1;
        }
        let bytes = &self.text.as_bytes()[self.at..b];
        self.line += bytes.iter().filter(|&&c| c == b'\n').count() as u64;
        self.at = b;
        self.line
    }
}

fn logon_type_name(t: &str) -> &'static str {
    match t {
        "0" => "System",
        "2" => "Interactive",
        "3" => "Network",
        "4" => "Batch",
        "5" => "Service",
        "7" => "Unlock",
        "8" => "NetworkCleartext",
        "9" => "NewCredentials",
        "10" => "RemoteInteractive",
        "11" => "CachedInteractive",
        "12" => "CachedRemoteInteractive",
        "13" => "CachedUnlock",
        _ => "Unknown",
    }
}

fn finish(out: &mut Parsed, line: u64, ev: WinEvent, raw: &str) {
    let Some(id) = ev.event_id else {
        return problem(out, line, "event has no EventID");
    };
    let (name, rating, subject) = match id {
        4624 => ("login", "normal", false),
        4625 => ("loginfailed", "warning", false),
        4634 | 4647 => ("logout", "normal", false),
        4648 => ("explicitCredentialLogon", "normal", false),
        4672 => ("assignPrivileges", "normal", true),
        _ => {
            out.skipped += 1;
            return;
        }
    };
    let Some(time_text) = ev.time.as_deref() else {
        return problem(out, line, format!("event {id} has no time"));
    };
    let Some(time_ms) = parse_time_ms(time_text) else {
        return problem(
            out,
            line,
            format!("event {id}: time {} is not RFC 3339", short(time_text)),
        );
    };
    let mut t = TraceBuilder::new(name.to_owned(), time_ms, raw.to_owned());
    t.rating = rating;
    t.service_type = "WINDOWS".to_owned();
    t.resource_type = "host".to_owned();
    t.resource_name = ev.computer.clone().filter(|s| !s.is_empty());
    let (user_key, domain_key, logon_key) = if subject {
        ("SubjectUserName", "SubjectDomainName", "SubjectLogonId")
    } else {
        ("TargetUserName", "TargetDomainName", "TargetLogonId")
    };
    t.user_name = ev.get(user_key).map(str::to_owned);
    t.domain_name = ev.get(domain_key).map(str::to_owned);
    t.resource_id = ev.get(logon_key).map(str::to_owned);
    t.source_ip = ev.get("IpAddress").and_then(|ip| {
        let ip = ip.split('%').next().unwrap_or(ip);
        ip_or_none(ip)
    });
    let logon_type = ev.get("LogonType");
    t.trace_type = match logon_type {
        Some("2" | "7" | "10" | "11" | "12" | "13") => "ConsoleAction",
        Some("0" | "4" | "5") => "SystemAction",
        _ => "ApiCall",
    };
    if t.trace_type == "SystemAction" {
        t.source_ip = None;
    }
    let mut notes = vec![format!("event {id}")];
    if let Some(lt) = logon_type {
        notes.push(format!("logon type {lt} ({})", logon_type_name(lt)));
    }
    if let Some(ws) = ev.get("WorkstationName") {
        notes.push(format!("workstation {ws}"));
    }
    match id {
        4625 => {
            t.code = "401".to_owned();
            if let Some(s) = ev.get("Status") {
                notes.push(format!("status {s}"));
            }
            if let Some(s) = ev.get("SubStatus") {
                notes.push(format!("substatus {s}"));
            }
        }
        4648 => {
            if let Some(s) = ev.get("SubjectUserName") {
                let d = ev.get("SubjectDomainName").unwrap_or("");
                notes.push(format!("by {d}\\{s}"));
            }
            if let Some(s) = ev.get("TargetServerName") {
                notes.push(format!("target server {s}"));
            }
        }
        4672 => {
            if let Some(p) = ev.get("PrivilegeList") {
                let p: Vec<&str> = p.split_whitespace().collect();
                notes.push(format!("privileges {}", p.join(" ")));
            }
        }
        _ => {}
    }
    t.message = Some(notes.join("; "));
    let key = match &ev.record_id {
        Some(r) => format!(
            "{}\u{1f}{}\u{1f}{r}",
            ev.computer.as_deref().unwrap_or(""),
            ev.channel.as_deref().unwrap_or("").to_ascii_lowercase()
        ),
        None => raw.to_owned(),
    };
    t.trace_id = stable_id("windows", &key);
    match t.build() {
        Ok(trace) => out.traces.push(trace),
        Err(reason) => problem(out, line, format!("event {id}: {reason}")),
    }
}
