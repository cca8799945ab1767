//! The fast parse path: JSON text → [`Trace`] without a `Value` tree for the whole object.
//!
//! serde_json drives a visitor over the top-level object. Each known member lands in its slot of
//! [`TraceMembers`] as a [`Member`] (strings borrowed from the input where they have no escapes);
//! only unknown members and non-string values of known members become `Value`s, built by
//! serde_json's own `Value` deserializer from the same input. The slots then go through the very
//! same rules as the slow path ([`trace_from_members`]), in table order, so the result cannot
//! depend on the path.
//!
//! Whatever the fast path does not reproduce itself goes to the slow path, which then decides
//! (and words the error): every serde_json error (syntax, recursion limit, trailing characters,
//! so messages keep the exact line and column), and serde_json's private map keys (an object
//! whose first key is `$serde_json::private::RawValue` deserializes to something else than an
//! object with the `raw_value` feature). Those are rare, so the double parse costs nothing in
//! practice.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use crate::parse::{
    DOMAIN, Member, Members, Schema, TRACE, TraceMembers, USER, describe_member, trace_from_members,
};
use crate::{Batch, BatchError, Trace, TraceError};

/// Keys with this prefix mean something to serde_json's `Value` deserializer (see the module
/// docs); any key with it sends the document to the slow path.
const PRIVATE_PREFIX: &str = "$serde_json::private::";

/// The member of a batch body that holds the records.
const TRACES: &str = "traces";

/// `Trace::from_json_str`: the fast path, or the slow one when the fast one cannot decide.
pub(crate) fn trace_from_json_str(s: &str) -> Result<Trace, TraceError> {
    fast_trace_from_json_str(s).unwrap_or_else(|| slow_trace_from_json_str(s))
}

/// The fast path alone; None where it leaves the decision to the slow path.
pub(crate) fn fast_trace_from_json_str(s: &str) -> Option<Result<Trace, TraceError>> {
    let mut members = TraceMembers::new(&TRACE);
    let mut de = serde_json::Deserializer::from_str(s);
    let top = TopSeed {
        envelope: None,
        members: &mut members,
    }
    .deserialize(&mut de)
    .and_then(|top| de.end().map(|()| top));
    Some(record(top.ok()?, &mut members))
}

/// The reference: a whole `Value` first, then [`Trace::from_value`].
pub(crate) fn slow_trace_from_json_str(s: &str) -> Result<Trace, TraceError> {
    let v: Value = serde_json::from_str(s).map_err(|e| TraceError::new("", e.to_string()))?;
    Trace::from_value(v)
}

/// One record (or a single-trace body), read into `members`, → its verdict, worded as
/// [`Trace::from_value`] does.
fn record(top: Top<'_>, members: &mut TraceMembers<'_>) -> Result<Trace, TraceError> {
    match top {
        Top::Object { .. } => trace_from_members(members),
        Top::Other(m) => Err(TraceError::new(
            "",
            format!("expected a JSON object, found {}", describe_member(&m)),
        )),
    }
}

/// `parse_batch`: the fast path, or the slow one when the fast one cannot decide.
pub(crate) fn parse_batch(body: &[u8], max: usize) -> Result<Batch, BatchError> {
    fast_parse_batch(body, max).unwrap_or_else(|| parse_batch_slow(body, max))
}

/// The fast path alone; None where it leaves the decision to the slow path.
pub(crate) fn fast_parse_batch(body: &[u8], max: usize) -> Option<Result<Batch, BatchError>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(Err(BatchError::empty()));
    }
    // One UTF-8 check of the whole body is cheaper than serde_json's check of every string
    // read from a byte slice; with valid UTF-8 both readers parse alike. Invalid UTF-8 goes to
    // the slow path, which words the error as before.
    let text = std::str::from_utf8(body).ok()?;
    let mut members = TraceMembers::new(&TRACE);
    let mut de = serde_json::Deserializer::from_str(text);
    let top = TopSeed {
        envelope: Some(max),
        members: &mut members,
    }
    .deserialize(&mut de)
    .and_then(|top| de.end().map(|()| top));
    Some(match top.ok()? {
        Top::Other(m) => Err(BatchError::not_an_object(json_kind(&m))),
        // `max` is at least 1 in practice; the check keeps the rule the same for any `max`.
        Top::Object { traces: None, .. } if max == 0 => Err(BatchError::too_many(max, 1)),
        Top::Object { traces: None, .. } => Ok(Batch {
            single: true,
            records: vec![trace_from_members(&mut members)],
        }),
        // The error names the other members in `Map` order, which depends on serde_json's
        // `preserve_order` feature; the slow path gets that right by construction.
        Top::Object {
            traces: Some(_),
            others: true,
            ..
        } => return None,
        Top::Object {
            traces: Some(Traces::List { total: 0, .. }),
            ..
        } => Err(BatchError::no_records()),
        Top::Object {
            traces: Some(Traces::List { total, .. }),
            ..
        } if total > max => Err(BatchError::too_many(max, total)),
        Top::Object {
            traces: Some(Traces::List { verdicts, .. }),
            ..
        } => Ok(Batch {
            single: false,
            records: verdicts,
        }),
        Top::Object {
            traces: Some(Traces::Other(m)),
            ..
        } => Err(BatchError::traces_not_an_array(json_kind(&m))),
    })
}

/// The reference for [`parse_batch`]: the ingest handler's original envelope and size checks
/// over a whole `Value`, then [`Trace::from_value`] per record.
pub(crate) fn parse_batch_slow(body: &[u8], max: usize) -> Result<Batch, BatchError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BatchError::empty());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| BatchError {
        message: format!("The message body is not valid JSON: {e}"),
    })?;
    let (records, single) = match value {
        Value::Object(mut map) if map.contains_key(TRACES) => {
            if map.len() > 1 {
                let other: Vec<&String> = map.keys().filter(|k| *k != TRACES).take(3).collect();
                return Err(BatchError {
                    message: format!(
                        "a batch body has only the member `traces`; found also {other:?}"
                    ),
                });
            }
            match map.remove(TRACES) {
                Some(Value::Array(items)) => (items, false),
                Some(other) => {
                    return Err(BatchError::traces_not_an_array(json_kind(
                        &Member::from_value(other),
                    )));
                }
                None => (Vec::new(), false),
            }
        }
        Value::Object(map) => (vec![Value::Object(map)], true),
        other => {
            return Err(BatchError::not_an_object(json_kind(&Member::from_value(
                other,
            ))));
        }
    };
    if records.is_empty() {
        return Err(BatchError::no_records());
    }
    if records.len() > max {
        return Err(BatchError::too_many(max, records.len()));
    }
    Ok(Batch {
        single,
        records: records.into_iter().map(Trace::from_value).collect(),
    })
}

/// The kind of a JSON value, as the envelope errors name it.
fn json_kind(m: &Member<'_>) -> &'static str {
    match m {
        Member::Str(_) | Member::Json(Value::String(_)) => "a string",
        Member::Json(Value::Null) => "null",
        Member::Json(Value::Bool(_)) => "a boolean",
        Member::Json(Value::Number(_)) => "a number",
        Member::Json(Value::Array(_)) => "an array",
        Member::Json(Value::Object(_)) | Member::Split(_) => "an object",
    }
}

/// A top-level document or one batch record.
enum Top<'de> {
    Object {
        /// Only for a batch body (`envelope`): the last `traces` member.
        traces: Option<Traces<'de>>,
        /// Only for a batch body (`envelope`): whether any member other than `traces` was seen.
        others: bool,
    },
    /// Not an object.
    Other(Member<'de>),
}

/// The `traces` member of a batch body.
enum Traces<'de> {
    /// The verdict per record, for the first `max` records. Each is reached as soon as the
    /// record is read, while its text is still in cache and before the next record's
    /// allocations; it only counts once the whole body turns out to be valid JSON (else the slow
    /// path decides). Records beyond `max` are still read in full (the body must be checked as
    /// JSON) but only counted: their verdicts would be thrown away, and a hostile body of many
    /// tiny records would otherwise hold a `Trace`-sized verdict (~1 KiB) per few input bytes.
    List {
        verdicts: Vec<Result<Trace, TraceError>>,
        total: usize,
    },
    Other(Member<'de>),
}

/// Deserializes a [`Top`], an object's members into `members` (cleared first). With
/// `envelope: Some(max)`, a `traces` member is kept apart (the batch body shape) and verdicts
/// are reached for its first `max` records; with None, it is an ordinary extra.
///
/// The members are written in place rather than returned: the slots are over 1 KiB, and a
/// returned value is moved through several layers of serde and `Result` (boxing it instead
/// costs a large allocation per record, which makes glibc consolidate its free lists).
struct TopSeed<'m, 'de> {
    envelope: Option<usize>,
    members: &'m mut TraceMembers<'de>,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_, 'de> {
    type Value = Top<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

/// Forwards the scalar cases of a visitor to [`MemberVisitor`], wrapped in `$wrap`.
macro_rules! forward_to_member {
    ($wrap:path) => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            MemberVisitor.visit_bool(v).map($wrap)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            MemberVisitor.visit_i64(v).map($wrap)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            MemberVisitor.visit_u64(v).map($wrap)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            MemberVisitor.visit_f64(v).map($wrap)
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            MemberVisitor.visit_borrowed_str(v).map($wrap)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            MemberVisitor.visit_str(v).map($wrap)
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            MemberVisitor.visit_string(v).map($wrap)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            MemberVisitor.visit_unit().map($wrap)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            MemberVisitor.visit_none().map($wrap)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            MemberVisitor.visit_some(d).map($wrap)
        }
    };
}

impl<'de> Visitor<'de> for TopSeed<'_, 'de> {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CTS trace")
    }

    forward_to_member!(Top::Other);

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Top<'de>, A::Error> {
        MemberVisitor.visit_seq(seq).map(Top::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let members = self.members;
        members.clear();
        let mut traces = None;
        let mut others = false;
        while let Some(Key(k)) = map.next_key()? {
            if k.starts_with(PRIVATE_PREFIX) {
                return Err(de::Error::custom(
                    "serde_json private key: use the slow path",
                ));
            }
            if let Some(max) = self.envelope.filter(|_| k == TRACES) {
                traces = Some(map.next_value_seed(TracesSeed { max })?);
                continue;
            }
            others = true;
            match members.index(&k) {
                // `user` is split while reading, like the trace itself; see `SplitSeed`.
                Some(i) if k == "user" => members.set(i, map.next_value_seed(SplitSeed::USER)?),
                Some(i) => members.set(i, map.next_value()?),
                None => {
                    let v: Value = map.next_value()?;
                    members.extra.insert(k.into_owned(), v);
                }
            }
        }
        Ok(Top::Object { traces, others })
    }
}

/// Deserializes the `traces` member: a list of records, or anything else (an error later).
struct TracesSeed {
    max: usize,
}

impl<'de> DeserializeSeed<'de> for TracesSeed {
    type Value = Traces<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Traces<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TracesSeed {
    type Value = Traces<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of CTS traces")
    }

    forward_to_member!(Traces::Other);

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Traces<'de>, A::Error> {
        MemberVisitor.visit_map(map).map(Traces::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Traces<'de>, A::Error> {
        // Capped so a hostile size hint cannot reserve much; real batches have ≤ 1000.
        let mut verdicts = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
        let mut total = 0;
        // One set of slots serves every record in turn.
        let mut members = TraceMembers::new(&TRACE);
        while let Some(top) = seq.next_element_seed(TopSeed {
            envelope: None,
            members: &mut members,
        })? {
            total += 1;
            if total <= self.max {
                verdicts.push(record(top, &mut members));
            }
        }
        Ok(Traces::List { verdicts, total })
    }
}

/// A map key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

impl<'de> Deserialize<'de> for Member<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MemberVisitor)
    }
}

/// Builds exactly what serde_json's `Value` visitor builds (scalars by the same conversions,
/// arrays and objects by `Value` itself), except that strings stay borrowed when they can.
struct MemberVisitor;

impl<'de> Visitor<'de> for MemberVisitor {
    type Value = Member<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Member<'de>, E> {
        Ok(Member::Json(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Member<'de>, E> {
        Ok(Member::Json(Value::Number(v.into())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Member<'de>, E> {
        Ok(Member::Json(Value::Number(v.into())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Member<'de>, E> {
        Ok(Member::Json(
            Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Member<'de>, E> {
        Ok(Member::Json(Value::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Member<'de>, E> {
        Ok(Member::Json(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Member<'de>, D::Error> {
        Member::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Member<'de>, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Member::from_value)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Member<'de>, A::Error> {
        // `Value` itself, so its handling of serde_json's private keys applies unchanged.
        Value::deserialize(MapAccessDeserializer::new(map)).map(Member::from_value)
    }
}

/// Deserializes `user` (and, within it, `domain`): an object straight into [`Members`], so
/// neither a `Value` tree nor its keys are built only to be split by the rules; anything else
/// as a plain [`Member`] for the rules to refuse or accept (a legacy string user).
#[derive(Clone, Copy)]
struct SplitSeed {
    schema: &'static Schema,
    /// The member (by slot) that is itself split, with its seed: `user.domain`.
    nested: Option<(usize, &'static SplitSeed)>,
}

impl SplitSeed {
    const DOMAIN: SplitSeed = SplitSeed {
        schema: &DOMAIN,
        nested: None,
    };
    const USER: SplitSeed = SplitSeed {
        schema: &USER,
        nested: Some((2, &SplitSeed::DOMAIN)),
    };
}

impl<'de> DeserializeSeed<'de> for SplitSeed {
    type Value = Member<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Member<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SplitSeed {
    type Value = Member<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    forward_to_member!(std::convert::identity);

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Member<'de>, A::Error> {
        MemberVisitor.visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member<'de>, A::Error> {
        let mut members = Box::new(Members::new(self.schema));
        while let Some(Key(k)) = map.next_key()? {
            // `Value` would not build an object here (see the module docs).
            if k.starts_with(PRIVATE_PREFIX) {
                return Err(de::Error::custom(
                    "serde_json private key: use the slow path",
                ));
            }
            match (members.index(&k), self.nested) {
                (Some(i), Some((n, seed))) if i == n => {
                    members.set(i, map.next_value_seed(*seed)?);
                }
                (Some(i), _) => members.set(i, map.next_value()?),
                (None, _) => {
                    let v: Value = map.next_value()?;
                    members.extra.insert(k.into_owned(), v);
                }
            }
        }
        Ok(Member::Split(members))
    }
}
