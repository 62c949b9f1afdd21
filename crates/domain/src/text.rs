//! What text Postgres can store.
//!
//! `text` and `jsonb` hold any valid UTF-8 except NUL (U+0000): Postgres
//! refuses it in both, anywhere in a string, an object key included. Every
//! string that can reach the database is checked at the edge (JSON bodies at
//! any depth, URL path and query parameters) and by the domain's own
//! validators, so a NUL is a 4xx naming the field, never a failed statement.

/// Why a string cannot be stored.
pub const NUL_MESSAGE: &str = "must not contain NUL (\\u0000), which cannot be stored";

/// Whether `s` can be stored in a `text` or `jsonb` column.
pub fn storable(s: &str) -> bool {
    !s.contains('\0')
}

/// The path of the first string in `value` that cannot be stored, key or
/// value, at any depth (`a.b[2].c`, starting with `prefix`); `None` when all
/// can. A key that cannot be stored is named by the path of its object.
pub fn unstorable_path(value: &serde_json::Value, prefix: &str) -> Option<String> {
    match value {
        serde_json::Value::String(s) if !storable(s) => Some(prefix.to_owned()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| unstorable_path(v, &format!("{prefix}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if !storable(k) {
                return Some(prefix.to_owned());
            }
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            unstorable_path(v, &path)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn names_the_first_unstorable_string_key_or_value() {
        assert_eq!(unstorable_path(&json!({"a": "ok", "b": [1, "x"]}), ""), None);
        assert_eq!(unstorable_path(&json!({"a": "\u{0}"}), ""), Some("a".into()));
        assert_eq!(
            unstorable_path(&json!({"a": {"b": [1, {"c": "x\u{0}y"}]}}), "data"),
            Some("data.a.b[1].c".into())
        );
        assert_eq!(unstorable_path(&json!({"k": {"\u{0}": 1}}), ""), Some("k".into()));
        assert_eq!(
            unstorable_path(&json!(["\u{0}"]), "events"),
            Some("events[0]".into())
        );
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,8}".prop_map(serde_json::Value::String),
            any::<String>().prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn all_strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| all_strings(x, out)),
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    out.push(k.clone());
                    all_strings(x, out);
                }
            }
            _ => {}
        }
    }

    proptest! {
        /// A value passes exactly when every string in it, keys included,
        /// is storable.
        #[test]
        fn a_value_passes_exactly_when_every_string_in_it_is_storable(v in json_value()) {
            let mut strings = Vec::new();
            all_strings(&v, &mut strings);
            let all_ok = strings.iter().all(|s| storable(s));
            prop_assert_eq!(unstorable_path(&v, "data").is_none(), all_ok);
        }
    }
}
