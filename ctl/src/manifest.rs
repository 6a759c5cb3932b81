//! Reading manifests from files, directories and stdin: multi-document YAML and JSON, `List`s
//! expanded, and errors that name the file, the document and the line.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{CtlError, Result};

/// One object read from a manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct Doc {
    /// The file it came from (`STDIN` for `-`).
    pub source: String,
    /// 1-based document number in that file.
    pub index: usize,
    /// 1-based line where the document starts.
    pub line: usize,
    pub value: Value,
}

impl Doc {
    pub fn where_(&self) -> String {
        format!(
            "{}, document {} (line {})",
            self.source, self.index, self.line
        )
    }
}

/// Reads every `-f` argument; `recursive` descends into sub-directories.
pub fn read_all(files: &[String], recursive: bool) -> Result<Vec<Doc>> {
    if files.is_empty() {
        return Err(CtlError::usage(
            "must specify one of -f and -k (give a file, a directory or - for stdin)",
        ));
    }
    let mut docs = Vec::new();
    for f in files {
        if f == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| CtlError::usage(format!("reading stdin: {e}")))?;
            docs.extend(parse_text("STDIN", &text)?);
            continue;
        }
        let path = Path::new(f);
        let meta = std::fs::metadata(path)
            .map_err(|e| CtlError::usage(format!("the path \"{f}\" cannot be read: {e}")))?;
        let paths = if meta.is_dir() {
            let mut found = Vec::new();
            collect_dir(path, recursive, &mut found)?;
            found
        } else {
            vec![path.to_path_buf()]
        };
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(|e| {
                CtlError::usage(format!("the file \"{}\" cannot be read: {e}", p.display()))
            })?;
            docs.extend(parse_text(&p.display().to_string(), &text)?);
        }
    }
    if docs.is_empty() {
        return Err(CtlError::usage(format!(
            "no objects passed to apply (the manifests {} hold no documents)",
            files.join(", ")
        )));
    }
    Ok(docs)
}

fn collect_dir(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| CtlError::usage(format!("reading directory {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if recursive {
                collect_dir(&p, recursive, out)?;
            }
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
    Ok(())
}

/// Splits YAML text at `---` lines: (1-based document number, 1-based first line, text).
pub fn split_documents(text: &str) -> Vec<(usize, usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let is_marker = line == "---" || line.starts_with("--- ") || line.trim_end() == "---";
        if is_marker {
            docs.push((docs.len() + 1, start, std::mem::take(&mut current)));
            start = i + 2;
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.push((docs.len() + 1, start, current));
    docs
}

/// The objects in one file's text.
pub fn parse_text(source: &str, text: &str) -> Result<Vec<Doc>> {
    let mut out = Vec::new();
    if text.trim_start().starts_with('{') || text.trim_start().starts_with('[') {
        let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        for (i, value) in stream.enumerate() {
            let value = value.map_err(|e| {
                CtlError::usage(format!(
                    "{source}: document {} is not valid JSON (line {}, column {}): {e}",
                    i + 1,
                    e.line(),
                    e.column()
                ))
            })?;
            push_objects(source, i + 1, 1, value, &mut out)?;
        }
        return Ok(out);
    }
    for (index, line, doc) in split_documents(text) {
        // Blank lines in front keep the parser's line numbers those of the file.
        let padded = format!("{}{doc}", "\n".repeat(line - 1));
        let value: Value = skiff_common::yaml::from_str(&padded).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!("line {}, column {}", l.line(), l.column()))
                .unwrap_or_else(|| format!("document starting at line {line}"));
            CtlError::usage(format!(
                "{source}: document {index} is not valid YAML ({at}): {e}"
            ))
        })?;
        if value.is_null() {
            continue;
        }
        push_objects(source, index, line, value, &mut out)?;
    }
    Ok(out)
}

fn push_objects(
    source: &str,
    index: usize,
    line: usize,
    value: Value,
    out: &mut Vec<Doc>,
) -> Result<()> {
    let doc = Doc {
        source: source.to_string(),
        index,
        line,
        value,
    };
    if !doc.value.is_object() {
        return Err(CtlError::usage(format!(
            "{}: expected an object with apiVersion, kind and metadata, found {}",
            doc.where_(),
            type_name(&doc.value)
        )));
    }
    if doc.value["kind"]
        .as_str()
        .is_some_and(|k| k.ends_with("List"))
        && doc.value["items"].is_array()
    {
        for item in doc.value["items"].as_array().cloned().unwrap_or_default() {
            push_objects(source, index, line, item, out)?;
        }
        return Ok(());
    }
    for field in ["apiVersion", "kind"] {
        if doc.value[field].as_str().is_none_or(str::is_empty) {
            return Err(CtlError::usage(format!(
                "{}: the object has no \"{field}\"; every manifest needs apiVersion, kind and metadata.name",
                doc.where_()
            )));
        }
    }
    out.push(doc);
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_with_their_lines() {
        let text = "a: 1\n---\n# c\nb: 2\n---\n";
        let docs = split_documents(text);
        assert_eq!(docs[0], (1, 1, "a: 1\n".into()));
        assert_eq!(docs[1], (2, 3, "# c\nb: 2\n".into()));
        assert_eq!(docs[2].0, 3);
    }

    #[test]
    fn reads_yaml_documents_and_lists() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: s}\n";
        let docs = parse_text("m.yaml", text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value["kind"], "Secret");
        assert_eq!((docs[1].index, docs[1].line), (3, 6));
    }

    #[test]
    fn yaml_errors_name_file_document_and_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n   bad: indent\n";
        let err = parse_text("bad.yaml", text).unwrap_err().to_string();
        assert!(
            err.starts_with("bad.yaml: document 2 is not valid YAML (line 9"),
            "{err}"
        );
    }

    #[test]
    fn json_objects_and_missing_kind() {
        let docs = parse_text(
            "x.json",
            "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\"}}",
        )
        .unwrap();
        assert_eq!(docs[0].value["metadata"]["name"], "a");
        let err = parse_text("y.yaml", "apiVersion: v1\nmetadata: {name: a}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("y.yaml, document 1 (line 1): the object has no \"kind\""),
            "{err}"
        );
        let err = parse_text("z.json", "{\n\"a\": }").unwrap_err().to_string();
        assert!(
            err.contains("z.json: document 1 is not valid JSON (line 2"),
            "{err}"
        );
    }
}
