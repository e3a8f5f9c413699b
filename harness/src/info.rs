//! Reading the `key:value` text of `INFO` and `CLUSTER INFO` for the harness and the tests.
//! The harness reads one field at a time; the library keeps its own parser for its voters.

/// The value of `field` in an `INFO`-style text (`# Section` headers, `key:value` lines ending
/// in `\r\n`); `None` when the field is absent.
///
/// ```
/// let info = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n";
/// assert_eq!(redlock_harness::info_field(info, "role"), Some("master"));
/// assert_eq!(redlock_harness::info_field(info, "master_port"), None);
/// ```
#[must_use]
pub fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.trim_end().strip_prefix(field)?.strip_prefix(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_info_fields() {
        let info = "# Persistence\r\nloading:0\r\naof_enabled:1\r\n";
        assert_eq!(info_field(info, "loading"), Some("0"));
        assert_eq!(info_field(info, "aof_enabled"), Some("1"));
        assert_eq!(info_field(info, "missing"), None);
    }

    #[test]
    fn a_value_may_contain_colons() {
        let info = "# Replication\r\nslave0:ip=127.0.0.1,port=7003,state=online\r\n";
        assert_eq!(
            info_field(info, "slave0"),
            Some("ip=127.0.0.1,port=7003,state=online")
        );
    }
}
