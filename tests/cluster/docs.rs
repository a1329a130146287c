//! The documentation's SQL examples against their printed output.

use super::*;

/// The SQL examples of README.md and docs/*.md, run in order against one database per file;
/// a ```sql block followed by an output block must print exactly that output. With
/// HS_BLESS_DOCS=1 the output blocks are rewritten from what the server printed instead.
#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn documentation_examples_print_what_the_docs_say() {
    cluster();
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let bless = std::env::var("HS_BLESS_DOCS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let db = format!("hs_doc_{}", file.file_stem().unwrap().to_string_lossy().to_lowercase().replace('-', "_"));
        let mut admin = connect("postgres");
        recreate(&mut admin, &db);
        let mut out = String::new();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let mut i = 0;
        while i < lines.len() {
            if lines[i].trim_end() != "```sql" {
                out.push_str(lines[i]);
                i += 1;
                continue;
            }
            let mut sql = String::new();
            out.push_str(lines[i]);
            i += 1;
            while i < lines.len() && lines[i].trim_end() != "```" {
                sql.push_str(lines[i]);
                out.push_str(lines[i]);
                i += 1;
            }
            out.push_str(lines.get(i).copied().unwrap_or("```\n"));
            i += 1;
            let actual = psql(&db, &sql);
            checked += 1;
            // an output block follows directly (after at most one blank line)
            let mut j = i;
            if j < lines.len()
                && lines[j].trim().is_empty()
                && j + 1 < lines.len()
                && lines[j + 1].trim_end() == "```text"
            {
                j += 1;
            }
            if j < lines.len() && lines[j].trim_end() == "```text" {
                let mut expected = String::new();
                let mut k = j + 1;
                while k < lines.len() && lines[k].trim_end() != "```" {
                    expected.push_str(lines[k]);
                    k += 1;
                }
                if normalize(&expected) != normalize(&actual) && !bless {
                    failures
                        .push(format!("{}: block\n{sql}\nexpected:\n{expected}\nactual:\n{actual}", file.display()));
                }
                for line in &lines[i..j] {
                    out.push_str(line);
                }
                out.push_str("```text\n");
                out.push_str(&normalize(if bless { &actual } else { &expected }));
                out.push_str("```\n");
                i = k + 1;
            } else if actual.contains("ERROR:") {
                failures.push(format!("{}: block without an output block failed:\n{sql}\n{actual}", file.display()));
            }
        }
        if bless {
            std::fs::write(&file, out).unwrap();
        }
    }
    assert!(checked > 0, "no SQL examples found");
    assert!(failures.is_empty(), "{} documentation example(s) differ:\n\n{}", failures.len(), failures.join("\n\n"));
}

fn normalize(s: &str) -> String {
    let mut out: String = s.lines().map(|l| format!("{}\n", l.trim_end())).collect();
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}
