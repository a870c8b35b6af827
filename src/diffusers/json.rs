//! Reading diffusers' JSON configs field by field, with errors that name the field.

use serde_json::{Map, Value};

use crate::error::{self, DiffusionError};

/// A [`DiffusionError::UnsupportedConfig`] naming a diffusers config field (of a file
/// that [`in_file`] names).
pub(crate) fn field_error(
    field: &str,
    value: impl std::fmt::Display,
    reason: impl Into<String>,
) -> DiffusionError {
    DiffusionError::UnsupportedConfig {
        file: "config".into(),
        field: field.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// `e` with the file it is about, when it is an [`DiffusionError::UnsupportedConfig`].
pub(crate) fn in_file(e: DiffusionError, path: impl std::fmt::Display) -> DiffusionError {
    match e {
        DiffusionError::UnsupportedConfig {
            field,
            value,
            reason,
            ..
        } => DiffusionError::UnsupportedConfig {
            file: path.to_string(),
            field,
            value,
            reason,
        },
        other => other,
    }
}

/// The fields of one config file, taken one by one; [`Fields::finish`] refuses the rest.
pub(crate) struct Fields {
    map: Map<String, Value>,
    what: &'static str,
}

impl Fields {
    /// Parses `json` as an object whose `_class_name`, if present, is one of `classes`.
    pub(crate) fn parse(json: &str, what: &'static str, classes: &[&str]) -> error::Result<Self> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| field_error(what, "the file", format!("is not valid JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(field_error(what, "the file", "must be a JSON object"));
        };
        let fields = Self { map, what };
        if let Some(class) = fields.map.get("_class_name")
            && !classes.iter().any(|c| class == c)
        {
            return Err(field_error(
                "_class_name",
                class,
                format!("{what}: expected one of {classes:?}"),
            ));
        }
        Ok(fields)
    }

    /// The `_class_name`, if given.
    pub(crate) fn class_name(&self) -> Option<&str> {
        self.map.get("_class_name").and_then(Value::as_str)
    }

    /// Removes and returns a field.
    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    /// Removes a field, returning it unless it is absent or null.
    pub(crate) fn take_non_null(&mut self, key: &str) -> Option<Value> {
        self.take(key).filter(|v| !v.is_null())
    }

    /// Removes fields that diffusers reads but that do not change the result here.
    pub(crate) fn ignore(&mut self, keys: &[&str]) {
        for key in keys {
            self.map.remove(*key);
        }
    }

    pub(crate) fn usize_or(&mut self, key: &str, default: usize) -> error::Result<usize> {
        match self.take_non_null(key) {
            None => Ok(default),
            Some(v) => as_usize(key, &v),
        }
    }

    pub(crate) fn optional_usize(&mut self, key: &str) -> error::Result<Option<usize>> {
        self.take_non_null(key)
            .map(|v| as_usize(key, &v))
            .transpose()
    }

    /// A number (Python's `Infinity`, `-Infinity` and `NaN` included, as strings).
    pub(crate) fn f64_or(&mut self, key: &str, default: f64) -> error::Result<f64> {
        match self.take_non_null(key) {
            None => Ok(default),
            Some(Value::String(s)) => match s.as_str() {
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                "NaN" => Ok(f64::NAN),
                _ => Err(field_error(key, format!("{s:?}"), "must be a number")),
            },
            Some(v) => v
                .as_f64()
                .ok_or_else(|| field_error(key, &v, "must be a number")),
        }
    }

    pub(crate) fn bool_or(&mut self, key: &str, default: bool) -> error::Result<bool> {
        match self.take_non_null(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| field_error(key, &v, "must be true or false")),
        }
    }

    pub(crate) fn string_or(&mut self, key: &str, default: &str) -> error::Result<String> {
        match self.take_non_null(key) {
            None => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s),
            Some(v) => Err(field_error(key, &v, "must be a string")),
        }
    }

    /// A field that must be absent or null.
    pub(crate) fn require_null(&mut self, key: &str, reason: &str) -> error::Result<()> {
        match self.take_non_null(key) {
            None => Ok(()),
            Some(v) => Err(field_error(key, v, reason)),
        }
    }

    /// A number field that must be `expected` (absent: `expected`).
    pub(crate) fn require_eq_f64(
        &mut self,
        key: &str,
        expected: f64,
        reason: &str,
    ) -> error::Result<()> {
        let v = self.f64_or(key, expected)?;
        if v != expected {
            return Err(field_error(key, v, reason));
        }
        Ok(())
    }

    /// A boolean field that must be `expected` (absent: `expected`).
    pub(crate) fn require_eq_bool(
        &mut self,
        key: &str,
        expected: bool,
        reason: &str,
    ) -> error::Result<()> {
        let v = self.bool_or(key, expected)?;
        if v != expected {
            return Err(field_error(key, v, reason));
        }
        Ok(())
    }

    /// A string field that must be one of `supported` (absent: `default`).
    pub(crate) fn require_str_in(
        &mut self,
        key: &str,
        default: &str,
        supported: &[&str],
    ) -> error::Result<String> {
        let v = self.string_or(key, default)?;
        if !supported.contains(&v.as_str()) {
            return Err(field_error(
                key,
                &v,
                format!("is not supported (supported: {supported:?})"),
            ));
        }
        Ok(v)
    }

    pub(crate) fn usize_list(&mut self, key: &str, default: &[usize]) -> error::Result<Vec<usize>> {
        match self.take_non_null(key) {
            None => Ok(default.to_vec()),
            Some(Value::Array(items)) => items.iter().map(|v| as_usize(key, v)).collect(),
            Some(v) => Err(field_error(key, &v, "must be a list of integers")),
        }
    }

    pub(crate) fn f64_list(&mut self, key: &str) -> error::Result<Option<Vec<f64>>> {
        match self.take_non_null(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_f64()
                        .ok_or_else(|| field_error(key, v, "must be a list of numbers"))
                })
                .collect::<error::Result<_>>()
                .map(Some),
            Some(v) => Err(field_error(key, &v, "must be a list of numbers")),
        }
    }

    pub(crate) fn str_list(&mut self, key: &str, default: &[&str]) -> error::Result<Vec<String>> {
        match self.take_non_null(key) {
            None => Ok(default.iter().map(|s| s.to_string()).collect()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| field_error(key, v, "must be a list of strings"))
                })
                .collect(),
            Some(v) => Err(field_error(key, &v, "must be a list of strings")),
        }
    }

    /// Refuses every field not taken, except metadata (keys starting with `_`).
    pub(crate) fn finish(self) -> error::Result<()> {
        let mut unknown = self.map.keys().filter(|k| !k.starts_with('_'));
        match unknown.next() {
            None => Ok(()),
            Some(key) => Err(field_error(
                key,
                &self.map[key],
                format!("is not a field this crate knows for {}", self.what),
            )),
        }
    }
}

/// A JSON value as a `usize`, or an error naming `name`.
pub(crate) fn as_usize(name: &str, v: &Value) -> error::Result<usize> {
    v.as_u64()
        .and_then(|u| usize::try_from(u).ok())
        .ok_or_else(|| field_error(name, v, "must be a non-negative integer"))
}
