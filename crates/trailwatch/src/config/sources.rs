//! `[[source]]` blocks: log sources that `trailwatch serve` follows and appends to its own
//! trace log (and that `trailwatch collect --config FILE` sends to a server). The fields are
//! `trailwatch_collect::SourceConfig`'s; this module reports every problem with its line.

use std::collections::HashSet;

use trailwatch_collect::SourceConfig;

use super::resources::{ArrayOf, ItemPath, err, read_items};
use super::{CURRENT_VERSION, ConfigError, location};

pub(super) const SOURCE_KEYS: &[&str] = &[
    "name",
    "kind",
    "path",
    "host",
    "project_id",
    "state_dir",
    "start_at",
    "units",
    "matches",
    "journalctl",
    "poll_interval_ms",
    "max_line_bytes",
    "max_spool_bytes",
];

const SOURCES: ArrayOf = ArrayOf {
    key: "source",
    known: SOURCE_KEYS,
    nested: &[],
};

/// Reads and checks the `[[source]]` blocks of `table`. `for_collect`: the file is
/// `trailwatch collect`'s, whose traces go to the project of its credentials.
pub(super) fn parse(
    src: &str,
    table: &toml::Table,
    for_collect: bool,
    errors: &mut Vec<ConfigError>,
) -> Vec<SourceConfig> {
    let top_at = |k: &str| location(src, None, Some(k));
    let path_of = |index, name| ItemPath {
        array: "source",
        index,
        name,
        sub: None,
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (source, path, raw) in
        read_items::<SourceConfig>(src, table, &SOURCES, &path_of, &top_at, errors)
    {
        for (key, message) in source.problems() {
            match key {
                // A `kind` that is there but is no kind was reported when it was read.
                Some("kind") if raw.contains_key("kind") => {}
                // A missing key is pointed at by its block's header.
                Some(k) if !raw.contains_key(k) => err(errors, src, &path, None, message),
                _ => err(errors, src, &path, key, message),
            }
        }
        if !source.name.is_empty() && !seen.insert(source.name.clone()) {
            err(
                errors,
                src,
                &path,
                Some("name"),
                format!(
                    "source `{}` is declared twice (the name keys its checkpoint)",
                    source.name
                ),
            );
        }
        if for_collect && source.project_id.is_some() {
            err(
                errors,
                src,
                &path,
                Some("project_id"),
                "`trailwatch collect` sends to the project of its credentials \
                 (--project / TRAILWATCH_PROJECT); project_id is for `trailwatch serve`"
                    .into(),
            );
        }
        if let Some(p) = &source.project_id
            && (p.len() != 32 || !p.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            err(
                errors,
                src,
                &path,
                Some("project_id"),
                format!("`{p}` is not a project id (32 hexadecimal digits)"),
            );
        }
        out.push(source);
    }
    out
}

/// `trailwatch collect --config FILE`: `version` and `[[source]]` blocks only.
pub fn parse_collect(src: &str) -> Result<Vec<SourceConfig>, Vec<ConfigError>> {
    let table: toml::Table = src.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| src[..s.start.min(src.len())].matches('\n').count() + 1);
        vec![ConfigError {
            location: line
                .map(|l| format!("line {l}"))
                .unwrap_or_else(|| "file".into()),
            message: format!("not valid TOML: {}", e.message()),
        }]
    })?;
    let mut errors = Vec::new();
    for key in table.keys() {
        if key != "version" && key != "source" {
            errors.push(ConfigError {
                location: location(src, None, Some(key)),
                message: format!(
                    "unknown key `{key}`; a collect file has `version` and [[source]] blocks"
                ),
            });
        }
    }
    match table.get("version") {
        None | Some(toml::Value::Integer(CURRENT_VERSION)) => {}
        Some(other) => errors.push(ConfigError {
            location: location(src, None, Some("version")),
            message: format!(
                "unsupported version {other}; this trailwatch reads version {CURRENT_VERSION}"
            ),
        }),
    }
    let sources = parse(src, &table, true, &mut errors);
    if sources.is_empty() && errors.is_empty() {
        errors.push(ConfigError {
            location: "file".into(),
            message: "no [[source]] block: nothing to collect".into(),
        });
    }
    if errors.is_empty() {
        Ok(sources)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_of_a_source_block_is_reported_with_its_line() {
        let src = r#"version = 1

[[source]]
name = "auth"
kind = "sshd"
path = "/var/log/auth.log"
colour = "red"

[[source]]
name = "auth"
kind = "journald"
path = "/x"
poll_interval_ms = 0

[[source]]
kind = "nonsense"
"#;
        let errors = parse_collect(src).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let has = |needle: &str| text.iter().any(|t| t.contains(needle));
        assert!(
            has("line 7, [[source]] auth, colour: unknown key"),
            "{text:#?}"
        );
        assert!(
            has("line 12, [[source]] auth, path: journald has no `path`"),
            "{text:#?}"
        );
        assert!(
            has("line 13, [[source]] auth, poll_interval_ms"),
            "{text:#?}"
        );
        assert!(
            has("line 10, [[source]] auth, name: source `auth` is declared twice"),
            "{text:#?}"
        );
        assert!(
            has("line 16, [[source]] #3, kind: unknown variant `nonsense`"),
            "{text:#?}"
        );
        assert!(
            has("line 15, [[source]] #3: `name` is required"),
            "{text:#?}"
        );
        assert_eq!(errors.len(), 6, "{text:#?}");
    }

    #[test]
    fn server_configuration_source_blocks_take_a_project_id() {
        let pid = "0123456789abcdef0123456789abcdef";
        let c = crate::config::parse(&format!(
            "version = 1\n\n[[source]]\nname = \"auth\"\nkind = \"sshd\"\npath = \"/var/log/auth.log\"\nproject_id = \"{pid}\"\n"
        ))
        .unwrap();
        assert_eq!(c.sources.len(), 1);
        assert_eq!(c.sources[0].project_id.as_deref(), Some(pid));
        let e = crate::config::parse(
            "[server]\nregion = \"local\"\n\n[[source]]\nname = \"a\"\nkind = \"sshd\"\npath = \"x\"\nproject_id = \"default\"\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].to_string()
                .starts_with("line 8, [[source]] a, project_id"),
            "{e:?}"
        );
    }

    #[test]
    fn a_valid_collect_file_parses_and_project_id_is_refused_there() {
        let ok = parse_collect(
            "[[source]]\nname = \"j\"\nkind = \"journald\"\nunits = [\"ssh\"]\nmatches = [\"_COMM=sshd\"]\n",
        )
        .unwrap();
        assert_eq!(ok[0].kind, Some(trailwatch_collect::SourceKind::Journald));
        assert_eq!(ok[0].units, ["ssh"]);
        let e = parse_collect(&format!(
            "[[source]]\nname = \"a\"\nkind = \"cloudtrail\"\npath = \"c.json\"\nproject_id = \"{}\"\n",
            "a".repeat(32)
        ))
        .unwrap_err();
        assert!(e[0].to_string().contains("line 5"), "{e:?}");
    }
}
