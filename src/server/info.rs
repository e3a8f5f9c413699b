//! The one parser of `INFO`-style text (`INFO`, `CLUSTER INFO`): `name:value` lines.
//!
//! Pure, so that it is tested apart from any connection and shared by whoever reads a node's
//! state (topology detection today).

use std::collections::HashMap;

/// The fields of an `INFO`-style reply, by name. `# Section` headers, blank lines and lines
/// without a `:` are skipped; values keep everything after the first `:` (minus the line
/// ending). When a name repeats, the first occurrence wins.
pub(crate) fn parse_info(text: &str) -> HashMap<&str, &str> {
    let mut fields = HashMap::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.starts_with('#') {
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            fields.entry(name).or_insert(value);
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_skips_headers() {
        let info = "# Persistence\r\nloading:0\r\naof_enabled:1\r\n\r\n# Replication\r\n\
                    master_host:::1\r\nrole:slave\r\nrole:master\r\n";
        let fields = parse_info(info);
        assert_eq!(fields.get("loading"), Some(&"0"));
        assert_eq!(fields.get("aof_enabled"), Some(&"1"));
        // A value may itself contain ':' (addresses, IPv6).
        assert_eq!(fields.get("master_host"), Some(&"::1"));
        assert_eq!(fields.get("role"), Some(&"slave"));
        assert_eq!(fields.get("missing"), None);
        assert_eq!(fields.len(), 4);
        assert!(parse_info("").is_empty());
        assert_eq!(parse_info("a:b:c\n").get("a"), Some(&"b:c"));
    }
}
