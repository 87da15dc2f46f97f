//! Small statistics and table helpers shared by every benchmark.

use std::fmt::Write as _;

/// Arithmetic mean; 0 for no values.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

/// Median (the mean of the two middle values for an even count); 0 for no values.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// Largest value; 0 for no values.
pub fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}

/// Nearest-rank percentile, `q` in `0..=100`; 0 for no values.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Mean and standard error of the paired differences `a[i] - b[i]`.
pub fn paired_difference(a: &[f64], b: &[f64]) -> (f64, f64) {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    if d.len() < 2 {
        return (mean(&d), f64::NAN);
    }
    let m = mean(&d);
    let var = d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (d.len() - 1) as f64;
    (m, (var / d.len() as f64).sqrt())
}

/// `value / baseline`, or NaN when the baseline is 0 (printed as `n/a`).
pub fn ratio(value: f64, baseline: f64) -> f64 {
    if baseline == 0.0 {
        f64::NAN
    } else {
        value / baseline
    }
}

/// A ratio as `0.93×` (or `n/a`).
pub fn fmt_ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}×")
    } else {
        "n/a".into()
    }
}

/// Seconds, with a unit that keeps 3 significant digits readable.
pub fn fmt_secs(s: f64) -> String {
    if !s.is_finite() {
        "n/a".into()
    } else if s >= 100.0 {
        format!("{s:.0} s")
    } else if s >= 10.0 {
        format!("{s:.1} s")
    } else if s >= 0.1 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1000.0)
    }
}

/// Bytes as MiB with one decimal.
pub fn fmt_mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

/// A Markdown table (so a run's output can be pasted into the README as is).
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let mut cells: Vec<String> = cells.into_iter().map(Into::into).collect();
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// Renders the table: first column left-aligned, the others right-aligned.
    pub fn render(&self) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| r[i].chars().count())
                .chain([self.headers[i].chars().count(), 3])
                .max()
                .unwrap_or(3)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let line = |cells: &[String]| {
            let mut out = String::from("|");
            for (i, cell) in cells.iter().enumerate() {
                let pad = widths[i] - cell.chars().count();
                if i == 0 {
                    let _ = write!(out, " {cell}{} |", " ".repeat(pad));
                } else {
                    let _ = write!(out, " {}{cell} |", " ".repeat(pad));
                }
            }
            out.push('\n');
            out
        };
        let mut out = line(&self.headers);
        out.push('|');
        for (i, w) in widths.iter().enumerate() {
            if i == 0 {
                let _ = write!(out, " {} |", "-".repeat(*w));
            } else {
                let _ = write!(out, " {}: |", "-".repeat(w - 1));
            }
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_median_max_percentile() {
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(mean(&v), 2.5);
        assert_eq!(median(&v), 2.5);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(max(&v), 4.0);
        assert_eq!(percentile(&v, 50.0), 2.0);
        assert_eq!(percentile(&v, 95.0), 4.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(mean(&[]), 0.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn paired_differences() {
        let (m, se) = paired_difference(&[2.0, 3.0, 4.0], &[1.0, 1.0, 1.0]);
        assert_eq!(m, 2.0);
        // Differences 1, 2, 3: sample sd 1, standard error 1/√3.
        assert!((se - 1.0 / 3f64.sqrt()).abs() < 1e-12);
        assert_eq!(paired_difference(&[1.0], &[1.0]).0, 0.0);
    }

    #[test]
    fn ratios_and_formatting() {
        assert_eq!(fmt_ratio(ratio(9.0, 10.0)), "0.90×");
        assert_eq!(fmt_ratio(ratio(1.0, 0.0)), "n/a");
        assert_eq!(fmt_secs(0.0123), "12.3 ms");
        assert_eq!(fmt_secs(1.5), "1.50 s");
        assert_eq!(fmt_secs(61.25), "61.2 s");
        assert_eq!(fmt_secs(3600.0), "3600 s");
        assert_eq!(fmt_mib(32.0 * 1024.0 * 1024.0), "32.0 MiB");
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(["policy", "requests"]);
        t.row(["doubling", "12.5"]);
        t.row(["x", "1"]);
        assert_eq!(
            t.render(),
            "| policy   | requests |\n| -------- | -------: |\n| doubling |     12.5 |\n| x        |        1 |\n"
        );
    }
}
