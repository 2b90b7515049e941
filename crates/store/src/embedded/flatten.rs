//! Decomposing a payload into leaves and rebuilding it.
//!
//! A leaf's path joins its segments with `/`: object keys escaped like JSON
//! pointers (`~` → `~0`, `/` → `~1`) plus a leading `#` escaped as `~2`, and
//! array indexes written `#<n>`, so `{"cores": [1.5]}` has the leaf
//! `cores/#0` and an object key that looks like an index never turns into
//! an array on the way back.

use serde_json::{Map, Value};

/// A numeric leaf's JSON type, kept so values come back as they were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    Int = 0,
    Float = 1,
    Bool = 2,
}

impl Kind {
    pub(crate) fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Int),
            1 => Some(Self::Float),
            2 => Some(Self::Bool),
            _ => None,
        }
    }
}

/// A numeric leaf's value. Integers stay `i64` so large counters are exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Number {
    pub(crate) fn kind(self) -> Kind {
        match self {
            Self::Int(_) => Kind::Int,
            Self::Float(_) => Kind::Float,
            Self::Bool(_) => Kind::Bool,
        }
    }

    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Self::Int(v) => v as f64,
            Self::Float(v) => v,
            Self::Bool(v) => f64::from(u8::from(v)),
        }
    }

    pub(crate) fn to_json(self) -> Value {
        match self {
            Self::Int(v) => Value::from(v),
            Self::Float(v) => Value::from(v),
            Self::Bool(v) => Value::Bool(v),
        }
    }
}

/// A payload split into numeric leaves and the rest (strings, nulls, empty
/// arrays and objects).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Leaves {
    pub numbers: Vec<(String, Number)>,
    pub attributes: Vec<(String, Value)>,
}

/// Splits an object payload into leaves; `None` when it cannot be rebuilt
/// exactly from them (not an object, empty, or an integer beyond `i64`),
/// in which case the payload is kept whole as a snapshot.
pub(crate) fn flatten_payload(data: &Value) -> Option<Leaves> {
    let object = data.as_object()?;
    if object.is_empty() {
        return None;
    }
    let mut leaves = Leaves::default();
    let mut path = String::new();
    for (key, value) in object {
        path.clear();
        push_key(&mut path, key);
        if !flatten_into(value, &mut path, &mut leaves) {
            return None;
        }
    }
    Some(leaves)
}

fn flatten_into(value: &Value, path: &mut String, leaves: &mut Leaves) -> bool {
    match value {
        Value::Bool(b) => leaves.numbers.push((path.clone(), Number::Bool(*b))),
        Value::Number(n) => {
            let number = if let Some(i) = n.as_i64() {
                Number::Int(i)
            } else if n.is_u64() {
                // Beyond i64: an f64 would round it, so the payload is kept whole.
                return false;
            } else {
                match n.as_f64() {
                    Some(f) => Number::Float(f),
                    None => return false,
                }
            };
            leaves.numbers.push((path.clone(), number));
        }
        Value::Object(map) if !map.is_empty() => {
            let base = path.len();
            for (key, child) in map {
                path.push('/');
                push_key(path, key);
                if !flatten_into(child, path, leaves) {
                    return false;
                }
                path.truncate(base);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let base = path.len();
            for (index, child) in items.iter().enumerate() {
                path.push_str("/#");
                path.push_str(&index.to_string());
                if !flatten_into(child, path, leaves) {
                    return false;
                }
                path.truncate(base);
            }
        }
        other => leaves.attributes.push((path.clone(), other.clone())),
    }
    true
}

fn push_key(path: &mut String, key: &str) {
    for (i, c) in key.chars().enumerate() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            '#' if i == 0 => path.push_str("~2"),
            c => path.push(c),
        }
    }
}

/// One step of a leaf path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// Splits a leaf path into segments (done once per series when reading).
pub(crate) fn parse_path(path: &str) -> Vec<Segment> {
    path.split('/')
        .map(|raw| {
            if let Some(index) = raw.strip_prefix('#').and_then(|n| n.parse().ok()) {
                return Segment::Index(index);
            }
            let mut key = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => key.push('~'),
                        Some('1') => key.push('/'),
                        Some('2') => key.push('#'),
                        Some(other) => {
                            key.push('~');
                            key.push(other);
                        }
                        None => key.push('~'),
                    }
                } else {
                    key.push(c);
                }
            }
            Segment::Key(key)
        })
        .collect()
}

#[cfg(test)]
/// Puts `value` at `path` inside `root` (an object), creating the objects
/// and arrays on the way; array gaps are `null`.
pub(crate) fn insert_leaf(root: &mut Value, path: &str, value: Value) {
    insert_at(root, &parse_path(path), value);
}

/// [`insert_leaf`] with the path already split.
pub(crate) fn insert_at(root: &mut Value, segments: &[Segment], value: Value) {
    let mut node = root;
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match segment {
            Segment::Key(key) => {
                if !node.is_object() {
                    *node = Value::Object(Map::new());
                }
                let Value::Object(map) = node else { return };
                if last {
                    map.insert(key.clone(), value);
                    return;
                }
                // Look up before inserting: most keys already exist, and
                // `entry` would allocate a key every time.
                if !map.contains_key(key) {
                    map.insert(key.clone(), Value::Null);
                }
                let Some(child) = map.get_mut(key) else {
                    return;
                };
                node = child;
            }
            Segment::Index(index) => {
                if !node.is_array() {
                    *node = Value::Array(Vec::new());
                }
                let Value::Array(items) = node else { return };
                if items.len() <= *index {
                    items.resize(index + 1, Value::Null);
                }
                if last {
                    items[*index] = value;
                    return;
                }
                node = &mut items[*index];
            }
        }
    }
}

/// Rebuilds a payload from its leaves.
#[cfg(test)]
pub(crate) fn unflatten(leaves: &Leaves) -> Value {
    let mut root = Value::Object(Map::new());
    for (path, number) in &leaves.numbers {
        insert_leaf(&mut root, path, number.to_json());
    }
    for (path, value) in &leaves.attributes {
        insert_leaf(&mut root, path, value.clone());
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattens_and_rebuilds_nested_payloads_exactly() {
        let data = json!({
            "usage": 12.5,
            "cores": [1.0, 2.5, 0.0],
            "load_1m": 3,
            "device": "/dev/sda1",
            "steal": null,
            "nested": {"a/b": {"~x": true, "#3": [[1], {}], "list": []}},
            "big": -9_000_000_000_000i64,
        });
        let leaves = flatten_payload(&data).unwrap();
        assert!(leaves
            .numbers
            .contains(&("cores/#1".to_owned(), Number::Float(2.5))));
        assert!(leaves
            .numbers
            .contains(&("load_1m".to_owned(), Number::Int(3))));
        assert!(leaves
            .attributes
            .contains(&("device".to_owned(), json!("/dev/sda1"))));
        assert!(leaves
            .numbers
            .contains(&("nested/a~1b/~23/#0/#0".to_owned(), Number::Int(1))));
        assert_eq!(unflatten(&leaves), data);
    }

    #[test]
    fn keeps_payloads_whole_when_leaves_cannot_rebuild_them() {
        assert!(flatten_payload(&json!([1, 2])).is_none());
        assert!(flatten_payload(&json!({})).is_none());
        assert!(flatten_payload(&json!("text")).is_none());
        assert!(flatten_payload(&json!({"huge": u64::MAX})).is_none());
    }

    #[test]
    fn kinds_round_trip_their_json_type() {
        assert_eq!(Number::Int(3).to_json(), json!(3));
        assert_eq!(Number::Float(3.0).to_json(), json!(3.0));
        assert_eq!(Number::Bool(true).to_json(), json!(true));
        assert_eq!(Number::Bool(true).as_f64(), 1.0);
        assert_eq!(Kind::from_code(2), Some(Kind::Bool));
        assert_eq!(Kind::from_code(9), None);
    }
}
