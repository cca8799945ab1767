//! LTS lines: per-stream sequence reads (the trigger's cursor), retention by group TTL, and
//! cascading deletes.
#![allow(clippy::unwrap_used)]

mod common;

use common::open;
use trailwatch_store::lts::{self, LogGroup, LogStream, NewLogLine};

fn line(i: usize) -> NewLogLine {
    NewLogLine {
        time_ns: i as i64,
        content: format!("line {i}"),
        labels: "{}".into(),
        log_uid: format!("uid-{i}"),
    }
}

#[tokio::test]
async fn streams_are_read_in_sequence_and_expire_by_their_group_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let day_ms = 86_400_000_i64;
    let now = trailwatch_store::now_ms();
    store
        .write(move |c| {
            for (g, ttl) in [("short", 1), ("long", 30)] {
                lts::create_group(
                    c,
                    &LogGroup {
                        group_id: g.into(),
                        project_id: "p".into(),
                        name: g.into(),
                        ttl_in_days: ttl,
                        creation_time: now,
                    },
                )?;
                lts::create_stream(
                    c,
                    &LogStream {
                        stream_id: format!("{g}-s"),
                        group_id: g.into(),
                        project_id: "p".into(),
                        name: "s".into(),
                        creation_time: now,
                    },
                )?;
            }
            // Two days old in both streams, then fresh lines.
            let old: Vec<NewLogLine> = (0..3).map(line).collect();
            lts::append_lines(c, "short-s", &old, now - 2 * day_ms)?;
            lts::append_lines(c, "long-s", &old, now - 2 * day_ms)?;
            let fresh: Vec<NewLogLine> = (3..5).map(line).collect();
            lts::append_lines(c, "short-s", &fresh, now)?;
            Ok(())
        })
        .await
        .unwrap();

    let (all, after2) = store
        .read(|c| {
            let all = lts::lines_after(c, "short-s", 0, 100)?;
            let after = lts::lines_after(c, "short-s", all[1].seq, 100)?;
            Ok((all, after))
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(after2.len(), 3);
    assert_eq!(after2[0].content, "line 2");

    let deleted = store
        .write(move |c| lts::apply_retention(c, now))
        .await
        .unwrap();
    assert_eq!(
        deleted, 3,
        "only the short group's two-day-old lines expire"
    );
    let (short, long) = store
        .read(|c| {
            Ok((
                lts::lines_after(c, "short-s", 0, 100)?,
                lts::lines_after(c, "long-s", 0, 100)?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(
        short.iter().map(|l| l.content.as_str()).collect::<Vec<_>>(),
        vec!["line 3", "line 4"]
    );
    assert_eq!(long.len(), 3);

    // Another project naming the group's id deletes nothing.
    assert!(
        !store
            .write(|c| lts::delete_group(c, "other", "long"))
            .await
            .unwrap()
    );
    let kept = store
        .read(|c| lts::lines_after(c, "long-s", 0, 100))
        .await
        .unwrap();
    assert_eq!(kept.len(), 3);

    // Deleting the group removes its streams and lines.
    assert!(
        store
            .write(|c| lts::delete_group(c, "p", "long"))
            .await
            .unwrap()
    );
    let gone = store
        .read(|c| {
            Ok((
                lts::list_streams(c, "p", "long")?,
                lts::stream_head(c, "long-s")?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(gone, (vec![], 0));
}
