//! nftables rules inside a node's namespace. Every table Perseus makes is named
//! `perseus_<fault>` and carries, as its comment, the target text of the fault's markers,
//! so the faults in force can be read back from the namespaces themselves.

use crate::error::Result;
use crate::lab::process::run_in;

/// A new table: loading it fails if a table of that name is already there (a fault is
/// never put in force twice; see `fault::start`). Creating it alone takes half the time of
/// replacing an old one in the same transaction.
pub(super) fn table_head(table: &str, comment: &str) -> String {
    format!(
        "table inet {table} {{\n\tcomment \"{}\"\n",
        comment.replace('"', "'")
    )
}

/// A ruleset of one table with no rules: it marks a change made outside nftables (a qdisc)
/// as in force, with `comment` as its target text.
pub fn marker_table(table: &str, comment: &str) -> String {
    let mut r = table_head(table, comment);
    r.push_str("}\n");
    r
}

/// Loads a ruleset in `netns`; it is in force when this returns.
pub fn apply(netns: &str, ruleset: &str) -> Result<()> {
    run_in(netns, "nft", &["-f", "-"], Some(ruleset)).map(|_| ())
}

/// The inet tables in `netns` whose names start with `perseus`, with their comments.
pub fn our_tables(netns: &str) -> Result<Vec<(String, String)>> {
    let out = run_in(netns, "nft", &["list", "ruleset"], None)?;
    Ok(parse_tables(&out))
}

/// The `perseus` inet tables of a ruleset listing, each with its whole text as listed.
pub fn table_texts(ruleset: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in ruleset.lines() {
        if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
            if line == "}" {
                out.extend(current.take());
            }
            continue;
        }
        if let Some(name) = line
            .strip_prefix("table inet ")
            .and_then(|l| l.strip_suffix(" {"))
            .filter(|n| n.starts_with("perseus"))
        {
            current = Some((name.to_string(), format!("{line}\n")));
        }
    }
    out
}

/// The `perseus` inet tables of a ruleset listing, with their comments.
pub fn parse_tables(ruleset: &str) -> Vec<(String, String)> {
    let mut tables = Vec::new();
    let mut lines = ruleset.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .strip_prefix("table inet ")
            .and_then(|l| l.strip_suffix(" {"))
        else {
            continue;
        };
        if !name.starts_with("perseus") {
            continue;
        }
        let comment = lines
            .peek()
            .and_then(|l| l.trim().strip_prefix("comment \""))
            .and_then(|c| c.strip_suffix('"'))
            .unwrap_or("")
            .to_string();
        tables.push((name.to_string(), comment));
    }
    tables
}

/// Removes table `inet <table>` from `netns` if it is there.
pub fn remove(netns: &str, table: &str) -> Result<()> {
    if our_tables(netns)?.iter().any(|(t, _)| t == table) {
        run_in(netns, "nft", &["delete", "table", "inet", table], None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_read_back_with_their_comments_and_their_text() {
        let listing = "table inet perseus_loss {\n\tcomment \"n2 30%\"\n\tchain input {\n\t}\n}\ntable inet other {\n\tchain x {\n\t}\n}\ntable inet perseus_isolate {\n\tchain input {\n\t}\n}\n";
        assert_eq!(
            parse_tables(listing),
            vec![
                ("perseus_loss".to_string(), "n2 30%".to_string()),
                ("perseus_isolate".to_string(), String::new())
            ]
        );
        let texts = table_texts(listing);
        assert_eq!(texts.len(), 2);
        assert_eq!(
            texts[0].1,
            "table inet perseus_loss {\n\tcomment \"n2 30%\"\n\tchain input {\n\t}\n}\n"
        );
        assert!(!texts.iter().any(|(_, t)| t.contains("chain x")));
    }

    #[test]
    fn a_marker_table_has_a_comment_and_no_rule() {
        let t = marker_table("perseus_throttle", "n2 \"1mbit\"");
        assert_eq!(
            t,
            "table inet perseus_throttle {\n\tcomment \"n2 '1mbit'\"\n}\n"
        );
        assert_eq!(
            parse_tables(&t),
            vec![("perseus_throttle".into(), "n2 '1mbit'".into())]
        );
    }
}
