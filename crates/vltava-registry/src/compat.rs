//! Compatibility levels between a subject's versions, with Confluent's
//! names and meaning:
//!
//! | level | the new schema must |
//! |---|---|
//! | `BACKWARD` (the default) | read data written with the latest version |
//! | `FORWARD` | write data the latest version can read |
//! | `FULL` | both |
//! | `*_TRANSITIVE` | the same, against every earlier version |
//! | `NONE` | nothing |
//!
//! What "read" means is each format's own: Avro's schema resolution
//! ([`crate::avro::reads`]), JSON Schema's "accepts every document the
//! writer's accepts" ([`crate::json::reads`]), Protobuf's wire rules
//! ([`crate::protobuf::reads`]).

use crate::schema::Parsed;

/// A compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Level {
    /// The registry's level until one is set.
    pub const DEFAULT: Level = Level::Backward;

    pub const ALL: [Level; 7] = [
        Level::None,
        Level::Backward,
        Level::BackwardTransitive,
        Level::Forward,
        Level::ForwardTransitive,
        Level::Full,
        Level::FullTransitive,
    ];

    /// Confluent's name (`BACKWARD_TRANSITIVE`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// The level Confluent's name names, in any case.
    pub fn parse(name: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(name.trim()))
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive
        )
    }
}

/// Checks `new` against a subject's earlier versions under `level`.
/// `earlier` is `(version, schema)`, oldest first, deleted versions left
/// out. Returns one message per incompatibility: empty means compatible.
pub fn check(level: Level, new: &Parsed, earlier: &[(i32, &Parsed)]) -> Vec<String> {
    let against: &[(i32, &Parsed)] = match (level.transitive(), earlier.split_last()) {
        (_, None) => &[],
        (true, Some(_)) => earlier,
        (false, Some((latest, _))) => std::slice::from_ref(latest),
    };
    let mut problems = Vec::new();
    for (version, old) in against {
        if level.backward() {
            for why in Parsed::reads(old, new) {
                problems.push(format!(
                    "the new schema cannot read data written with version {version}: {why}"
                ));
            }
        }
        if level.forward() {
            for why in Parsed::reads(new, old) {
                problems.push(format!(
                    "version {version} cannot read data written with the new schema: {why}"
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::AvroSchema;

    fn record(fields: &str) -> Parsed {
        Parsed::Avro(
            AvroSchema::parse(&format!(
                r#"{{"type":"record","name":"User","fields":[{fields}]}}"#
            ))
            .unwrap(),
        )
    }

    fn check_avro(level: Level, new: &Parsed, earlier: &[(i32, &Parsed)]) -> Vec<String> {
        check(level, new, earlier)
    }

    #[test]
    fn names_round_trip_in_any_case() {
        for level in Level::ALL {
            assert_eq!(Level::parse(level.name()), Some(level));
            assert_eq!(Level::parse(&level.name().to_lowercase()), Some(level));
        }
        assert_eq!(Level::parse("SIDEWAYS"), None);
        assert_eq!(Level::DEFAULT.name(), "BACKWARD");
    }

    #[test]
    fn each_level_checks_the_direction_and_versions_it_names() {
        let id = r#"{"name":"id","type":"long"}"#;
        let v1 = record(id);
        // Adds a field with a default: old data gets the default (backward),
        // old readers skip it (forward).
        let v2 = record(&format!(
            r#"{id},{{"name":"email","type":"string","default":""}}"#
        ));
        // Adds a field without a default: readers of v3 cannot read v1 or v2
        // data (no value for `age`), but v1/v2 readers skip it.
        let v3 = record(&format!(
            r#"{id},{{"name":"email","type":"string","default":""}},{{"name":"age","type":"int"}}"#
        ));
        // Drops `email` again (it had a default): readers of v2 fill it in.
        let v4 = record(&format!(r#"{id},{{"name":"age","type":"int"}}"#));
        let history = [(1, &v1), (2, &v2)];
        for level in Level::ALL {
            assert!(check_avro(level, &v2, &[(1, &v1)]).is_empty(), "{level:?}");
            assert!(
                check_avro(level, &v1, &[]).is_empty(),
                "{level:?}: no earlier versions"
            );
        }
        let backward = check_avro(Level::Backward, &v3, &history);
        assert_eq!(backward.len(), 1, "{backward:?}");
        assert!(
            backward[0].starts_with("the new schema cannot read data written with version 2"),
            "{backward:?}"
        );
        assert!(check_avro(Level::Forward, &v3, &history).is_empty());
        assert!(check_avro(Level::None, &v3, &history).is_empty());
        assert_eq!(check_avro(Level::Full, &v3, &history).len(), 1);
        // v4 against v3 alone is fine both ways; transitively, v1 and v2
        // data has no `age` for a v4 reader.
        let longer = [(1, &v1), (2, &v2), (3, &v3)];
        assert!(check_avro(Level::Backward, &v4, &longer).is_empty());
        let transitive = check_avro(Level::BackwardTransitive, &v4, &longer);
        assert_eq!(transitive.len(), 2, "{transitive:?}");
        assert!(transitive[0].contains("version 1") && transitive[1].contains("version 2"));
        assert!(check_avro(Level::ForwardTransitive, &v4, &longer).is_empty());
        assert_eq!(check_avro(Level::FullTransitive, &v4, &longer).len(), 2);
    }

    #[test]
    fn a_type_change_and_a_narrowed_enum_are_incompatible() {
        let long_id = record(r#"{"name":"id","type":"long"}"#);
        let string_id = record(r#"{"name":"id","type":"string"}"#);
        assert_eq!(
            check_avro(Level::Full, &string_id, &[(1, &long_id)]).len(),
            2
        );
        // int widens to long: an int writer is readable by a long reader.
        let int_id = record(r#"{"name":"id","type":"int"}"#);
        assert!(check_avro(Level::Backward, &long_id, &[(1, &int_id)]).is_empty());
        assert_eq!(
            check_avro(Level::Forward, &long_id, &[(1, &int_id)]).len(),
            1
        );
        let enumeration = |symbols: &str| {
            Parsed::Avro(
                AvroSchema::parse(&format!(
                    r#"{{"type":"enum","name":"Color","symbols":[{symbols}]}}"#
                ))
                .unwrap(),
            )
        };
        let rgb = enumeration(r#""R","G","B""#);
        let rg = enumeration(r#""R","G""#);
        // A reader without B cannot read every value an RGB writer writes.
        assert_eq!(check_avro(Level::Backward, &rg, &[(1, &rgb)]).len(), 1);
        assert!(check_avro(Level::Backward, &rgb, &[(1, &rg)]).is_empty());
    }
}
