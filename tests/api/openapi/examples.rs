//! Every ```json example in docs/*.md names a schema and validates against it.

use serde_json::Value;

use super::{document, named, violations};

/// The ```json blocks of a Markdown file, each with the schema named by the
/// `<!-- schema: Name -->` line before it (None when there is none) and its line number.
fn json_blocks(text: &str) -> Vec<(usize, Option<String>, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_start() == "```json" {
            let start = i + 1;
            let schema = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| {
                    l.trim()
                        .strip_prefix("<!-- schema:")?
                        .strip_suffix("-->")
                        .map(|s| s.trim().to_string())
                });
            let mut body = Vec::new();
            i += 1;
            while i < lines.len() && lines[i].trim_start() != "```" {
                body.push(lines[i]);
                i += 1;
            }
            out.push((start, schema, body.join("\n")));
        }
        i += 1;
    }
    out
}

#[test]
fn every_json_example_in_the_docs_fits_its_schema() {
    let doc = document();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        for (line, schema, body) in json_blocks(&text) {
            let Some(schema) = schema else {
                problems.push(format!(
                    "{name}:{line}: a json block needs <!-- schema: Name --> before it"
                ));
                continue;
            };
            if doc["components"]["schemas"].get(&schema).is_none() {
                problems.push(format!("{name}:{line}: no schema {schema} in openapi.json"));
                continue;
            }
            let example: Value = match serde_json::from_str(&body) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("{name}:{line}: not JSON: {e}"));
                    continue;
                }
            };
            for v in violations(&doc, &named(&schema), &example) {
                problems.push(format!("{name}:{line}: {schema}: {v}"));
            }
            checked += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 10, "only {checked} examples found");
}

#[test]
fn a_wrong_example_is_caught() {
    let doc = document();
    let text = "<!-- schema: Chat -->\n```json\n{\"id\": 1}\n```\n```json\n{}\n```\n";
    let blocks = json_blocks(text);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].1.as_deref(), Some("Chat"));
    assert_eq!(blocks[1].1, None);
    let example: Value = serde_json::from_str(&blocks[0].2).unwrap();
    assert!(!violations(&doc, &named("Chat"), &example).is_empty());
}
