//! Pure helpers of the comparison benchmark (`benches/compare.rs`): percentiles, ratio and
//! time formatting, the Markdown table and the SVG plot. Everything that talks to Redis is in
//! the bench target; what is here is unit-tested.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use plotters::prelude::*;

/// The value at quantile `q` (0 to 1) of `sorted` (ascending), nearest-rank on `len - 1`.
/// `None` for an empty slice.
#[must_use]
pub fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    let idx = (last as f64 * q.clamp(0.0, 1.0)).round() as usize;
    Some(sorted[idx.min(last)])
}

/// Sorts `samples` and returns `(p50, p99)`; `None` when empty.
#[must_use]
pub fn p50_p99(samples: &mut [Duration]) -> Option<(Duration, Duration)> {
    samples.sort_unstable();
    Some((percentile(samples, 0.5)?, percentile(samples, 0.99)?))
}

/// A duration in milliseconds with a precision that suits its size: `0.412 ms`, `12.3 ms`,
/// `1234 ms`.
#[must_use]
pub fn fmt_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.3} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// `value / base` as `1.23x`; `n/a` when either is missing, not finite or the base is 0.
#[must_use]
pub fn fmt_ratio(value: Option<f64>, base: Option<f64>) -> String {
    match (value, base) {
        (Some(v), Some(b)) if b != 0.0 && v.is_finite() && b.is_finite() => {
            format!("{:.2}x", v / b)
        }
        _ => "n/a".to_string(),
    }
}

/// A rate, rounded to a whole number with thousands separated by a thin space-free comma:
/// `12,345/s`.
#[must_use]
pub fn fmt_rate(per_sec: f64) -> String {
    format!("{}/s", group_thousands(per_sec.round().max(0.0) as u64))
}

/// `1234567` as `1,234,567`.
#[must_use]
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `time` as `YYYY-MM-DD HH:MM UTC` (times before 1970 print as the epoch).
#[must_use]
pub fn utc_timestamp(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// One `cmdstat_*` line of `INFO commandstats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandStat {
    /// The command's name as Redis writes it: lower case, a subcommand after `|`
    /// (`config|resetstat`).
    pub name: String,
    /// Calls since the last `CONFIG RESETSTAT`, those made from inside scripts included.
    pub calls: u64,
    /// Microseconds spent in the command. A script's own entry (`evalsha`) includes the time of
    /// the commands it called, which also have entries of their own.
    pub usec: u64,
}

/// The `cmdstat_*` lines of `INFO commandstats` text (other lines are skipped).
#[must_use]
pub fn parse_commandstats(info: &str) -> Vec<CommandStat> {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| {
                fields
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            Some(CommandStat {
                name: name.to_string(),
                calls: field("calls")?,
                usec: field("usec")?,
            })
        })
        .collect()
}

/// A whole-number field (`field:123`) of `INFO` text.
#[must_use]
pub fn info_u64(info: &str, field: &str) -> Option<u64> {
    info.lines().find_map(|line| {
        let (key, value) = line.trim().split_once(':')?;
        (key == field).then(|| value.trim().parse().ok())?
    })
}

/// The commands a Lua script calls (`redis.call('GET', ...)`, `redis.pcall("SPUBLISH", ...)`),
/// lower case, as `INFO commandstats` names them.
#[must_use]
pub fn script_commands(lua: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for call in ["redis.call(", "redis.pcall("] {
        for (at, _) in lua.match_indices(call) {
            let rest = lua[at + call.len()..].trim_start();
            let Some(quote) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') else {
                continue;
            };
            if let Some(end) = rest[1..].find(quote) {
                out.insert(rest[1..=end].to_ascii_lowercase());
            }
        }
    }
    out
}

/// User + system CPU time of a process from its `/proc/<pid>/stat` line, in clock ticks
/// (`utime` and `stime`, fields 14 and 15; the command name in field 2 may hold spaces and
/// parentheses, so fields are counted from its closing parenthesis).
#[must_use]
pub fn proc_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A Markdown table: a header row and rows of cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    #[must_use]
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells render empty, extra cells are dropped.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let mut cells: Vec<String> = cells.into_iter().map(Into::into).collect();
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// Number of rows (the header not counted).
    #[must_use]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// GitHub-flavoured Markdown, columns padded to line up; `|` in cells escaped.
    #[must_use]
    pub fn to_markdown(&self) -> String {
        let escape = |s: &str| s.replace('|', "\\|");
        let header: Vec<String> = self.header.iter().map(|h| escape(h)).collect();
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|c| escape(c)).collect())
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([header[i].chars().count(), 3])
                    .max()
                    .unwrap_or(3)
            })
            .collect();
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for (cell, &w) in cells.iter().zip(&widths) {
                let pad = w - cell.chars().count();
                let _ = write!(s, " {cell}{} |", " ".repeat(pad));
            }
            s.push('\n');
            s
        };
        let mut out = line(&header);
        out.push('|');
        for &w in &widths {
            let _ = write!(out, " {} |", "-".repeat(w));
        }
        out.push('\n');
        for row in &rows {
            out.push_str(&line(row));
        }
        out
    }
}

/// One line of a plot: a name and `(x, y)` points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points in x order.
    pub points: Vec<(f64, f64)>,
}

/// One panel of a plot.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Title above the panel.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
}

/// Line colours, one per series in order (colour-blind friendly Okabe-Ito).
const COLOURS: [RGBColor; 4] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
];

/// Renders panels side by side as an SVG document. Text is SVG `<text>` (no fonts are read
/// at build or run time). Every panel's y axis starts at 0.
///
/// # Errors
/// A plotting error, as text (empty panels are fine).
pub fn render_svg(panels: &[Panel], width: u32, height: u32) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (panel, area) in panels.iter().zip(areas) {
            let points = panel.series.iter().flat_map(|s| s.points.iter());
            let (mut x_min, mut x_max, mut y_max) = (f64::MAX, f64::MIN, 0.0f64);
            for &(x, y) in points {
                x_min = x_min.min(x);
                x_max = x_max.max(x);
                y_max = y_max.max(y);
            }
            if x_min > x_max {
                (x_min, x_max) = (0.0, 1.0);
            }
            if x_min == x_max {
                x_max = x_min + 1.0;
            }
            let y_max = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
            let mut chart = ChartBuilder::on(&area)
                .caption(&panel.title, ("sans-serif", 16))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(64)
                .build_cartesian_2d(x_min..x_max, 0.0..y_max)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc(panel.x_label.as_str())
                .y_desc(panel.y_label.as_str())
                .x_labels(8)
                .y_labels(6)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| short_number(*y))
                .draw()
                .map_err(|e| e.to_string())?;
            for (series, colour) in panel.series.iter().zip(COLOURS.iter().cycle()) {
                let colour = *colour;
                chart
                    .draw_series(LineSeries::new(
                        series.points.iter().copied(),
                        colour.stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?
                    .label(series.name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                    });
                chart
                    .draw_series(
                        series
                            .points
                            .iter()
                            .map(|&p| Circle::new(p, 3, colour.filled())),
                    )
                    .map_err(|e| e.to_string())?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// An axis number: `0.5`, `12`, `3.4k`, `1.2M`.
#[must_use]
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_nearest_rank() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[ms(7)], 0.99), Some(ms(7)));
        let v: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&v, 0.0), Some(ms(1)));
        assert_eq!(percentile(&v, 0.5), Some(ms(51)));
        assert_eq!(percentile(&v, 0.99), Some(ms(99)));
        assert_eq!(percentile(&v, 1.0), Some(ms(100)));
        assert_eq!(percentile(&v, 2.0), Some(ms(100)));
        let mut shuffled = vec![ms(3), ms(1), ms(2)];
        assert_eq!(p50_p99(&mut shuffled), Some((ms(2), ms(3))));
        assert_eq!(p50_p99(&mut []), None);
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_ms(Duration::from_micros(412)), "0.412 ms");
        assert_eq!(fmt_ms(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(fmt_ms(ms(1234)), "1234 ms");
        assert_eq!(fmt_ratio(Some(3.0), Some(2.0)), "1.50x");
        assert_eq!(fmt_ratio(Some(3.0), Some(0.0)), "n/a");
        assert_eq!(fmt_ratio(None, Some(1.0)), "n/a");
        assert_eq!(fmt_ratio(Some(f64::NAN), Some(1.0)), "n/a");
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
        assert_eq!(fmt_rate(12_345.4), "12,345/s");
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(0.5), "0.50");
        assert_eq!(short_number(1500.0), "1.5k");
        assert_eq!(short_number(25_000.0), "25k");
        assert_eq!(short_number(2_500_000.0), "2.5M");
    }

    #[test]
    fn timestamps() {
        use std::time::{SystemTime, UNIX_EPOCH};
        let at = |secs| utc_timestamp(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01 00:00 UTC");
        assert_eq!(at(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(at(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(at(4_107_542_399), "2100-02-28 23:59 UTC");
        assert!(utc_timestamp(SystemTime::now()).ends_with(" UTC"));
    }

    #[test]
    fn markdown_table_pads_escapes_and_fills() {
        let mut t = Table::new(["a", "long header"]);
        assert!(t.is_empty());
        t.row(["x|y"]);
        t.row(["1", "2", "dropped"]);
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.to_markdown(),
            "| a    | long header |\n\
             | ---- | ----------- |\n\
             | x\\|y |             |\n\
             | 1    | 2           |\n"
        );
    }

    #[test]
    fn svg_renders_without_fonts() {
        let panel = Panel {
            title: "serial p50".into(),
            x_label: "voters".into(),
            y_label: "ms".into(),
            series: vec![
                Series {
                    name: "raw".into(),
                    points: vec![(1.0, 0.2), (3.0, 0.3), (5.0, 0.35)],
                },
                Series {
                    name: "ours".into(),
                    points: vec![(1.0, 0.4), (3.0, 0.5)],
                },
            ],
        };
        let empty = Panel {
            title: "empty".into(),
            x_label: String::new(),
            y_label: String::new(),
            series: Vec::new(),
        };
        let svg = render_svg(&[panel, empty], 900, 400).expect("svg");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("serial p50"));
        assert!(svg.contains("ours"));
        assert!(svg.contains("<polyline"));
    }

    #[test]
    fn commandstats_and_info_fields() {
        let info = "# Commandstats\r\n\
            cmdstat_evalsha:calls=30,usec=450,usec_per_call=15.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_config|resetstat:calls=1,usec=159,usec_per_call=159.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_broken:usec=3\r\n\
            # Stats\r\n\
            total_reads_processed:1234\r\n\
            total_net_input_bytes:99\r\n";
        let stats = parse_commandstats(info);
        assert_eq!(
            stats,
            vec![
                CommandStat {
                    name: "evalsha".into(),
                    calls: 30,
                    usec: 450
                },
                CommandStat {
                    name: "config|resetstat".into(),
                    calls: 1,
                    usec: 159
                },
            ]
        );
        assert_eq!(info_u64(info, "total_reads_processed"), Some(1234));
        assert_eq!(info_u64(info, "total_net_input_bytes"), Some(99));
        assert_eq!(info_u64(info, "total_reads"), None);
        assert_eq!(info_u64(info, "cmdstat_evalsha"), None);
    }

    #[test]
    fn commands_called_by_scripts() {
        let lua = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n\
                   redis.pcall(\"SPUBLISH\", KEYS[1] .. ':released', ARGV[1])\n\
                   return redis.call( 'del', KEYS[1])\nend\nlocal t = redis.call(ARGV[2])\n";
        let names: Vec<String> = script_commands(lua).into_iter().collect();
        assert_eq!(names, ["del", "get", "spublish"]);
        assert!(script_commands("return 1").is_empty());
    }

    #[test]
    fn proc_stat_ticks() {
        let stat = "4242 (redis-server (x) 1) S 1 4242 4242 0 -1 4194560 1 0 0 0 17 5 0 0 20 0";
        assert_eq!(proc_stat_cpu_ticks(stat), Some(22));
        assert_eq!(proc_stat_cpu_ticks("4242 (short) S 1"), None);
        assert_eq!(proc_stat_cpu_ticks("no parenthesis"), None);
    }
}
