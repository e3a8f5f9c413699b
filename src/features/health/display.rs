//! The report as a table of voters followed by its findings, worst first.

use std::fmt;

use super::HealthReport;

impl fmt::Display for HealthReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dash = || "-".to_string();
        let header = [
            "voter",
            "role",
            "redis",
            "run_id",
            "uptime",
            "persistence",
            "maxmemory (policy)",
            "replicas (lag)",
            "full coverage",
            "rtt",
            "clock rate",
            "clock offset",
        ];
        let rows: Vec<[String; 12]> = self
            .voters
            .iter()
            .map(|v| {
                let persistence = match (v.appendonly, v.appendfsync.as_deref()) {
                    (Some(false), _) => "no aof".to_string(),
                    (Some(true), Some(fsync)) => format!("aof, fsync {fsync}"),
                    (Some(true), None) => "aof, fsync ?".to_string(),
                    (None, _) => dash(),
                };
                let memory = match (v.maxmemory, &v.maxmemory_policy) {
                    (Some(max), Some(policy)) => format!("{max} ({policy})"),
                    _ => dash(),
                };
                let replicas = match v.connected_replicas {
                    None => dash(),
                    Some(0) => "0".to_string(),
                    Some(n) => {
                        let lags: Vec<String> = v
                            .replicas
                            .iter()
                            .map(|r| {
                                r.lag
                                    .map_or_else(|| "?".into(), |l| l.as_secs().to_string())
                            })
                            .collect();
                        format!("{n} ({}s)", lags.join(","))
                    }
                };
                [
                    v.addr.clone(),
                    v.role.clone().unwrap_or_else(dash),
                    v.redis_version.clone().unwrap_or_else(dash),
                    v.run_id
                        .as_deref()
                        .map_or_else(dash, |id| id.chars().take(8).collect()),
                    v.uptime.map_or_else(dash, |u| format!("{}s", u.as_secs())),
                    persistence,
                    memory,
                    replicas,
                    v.cluster_require_full_coverage
                        .map_or_else(dash, |yes| if yes { "yes" } else { "no" }.into()),
                    v.rtt
                        .map_or_else(dash, |r| format!("{:.2} ms", r.as_secs_f64() * 1000.0)),
                    v.clock_rate.map_or_else(dash, |c| {
                        format!("{:.4} [{:.4}, {:.4}]", c.rate, c.low, c.high)
                    }),
                    v.clock_offset.map_or_else(dash, |o| {
                        format!(
                            "{:+.3} ms (+/- {:.3})",
                            o.seconds * 1000.0,
                            o.uncertainty.as_secs_f64() * 1000.0
                        )
                    }),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[&str]| -> fmt::Result {
            let mut text = String::new();
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(&format!("{cell:<width$}"));
            }
            writeln!(f, "{}", text.trim_end())
        };
        line(f, &header)?;
        for row in &rows {
            line(f, &row.each_ref().map(String::as_str))?;
        }
        writeln!(
            f,
            "(mode {:?}, drift factor {}, clock sampled over {:?}, clocks apart by at most {})",
            self.mode,
            self.drift_factor,
            self.clock_window,
            self.clock_spread
                .map_or_else(dash, |s| format!("{:.3} ms", s.as_secs_f64() * 1000.0))
        )?;
        let findings = self.findings();
        if findings.is_empty() {
            return writeln!(f, "no findings");
        }
        writeln!(f, "findings:")?;
        for (addr, finding) in findings {
            writeln!(f, "  {:<7}  {addr}  {}", finding.severity, finding.message)?;
            writeln!(
                f,
                "  {:<7}  {:width$}  fix: {}",
                "",
                "",
                finding.fix,
                width = addr.len()
            )?;
        }
        Ok(())
    }
}
