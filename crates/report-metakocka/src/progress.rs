//! Reading a fraction out of MetaKocka's free-text progress, e.g.
//! `Priprava podatkov za račun BC-MK-328 9 / 23` → 9/23.

/// The completed fraction a progress text tells, from its last `N / M` pair (spaces around the
/// slash optional).
///
/// No fraction when there is no such pair, when `M` is 0, or when `N > M`: a wrong fraction
/// would mislead the wait policy's completion estimate more than none. A pair that is part of a
/// longer run of slashes and digits (a date such as `12/5/2024`) is not a fraction either.
///
/// ```
/// use report_metakocka::progress_fraction;
/// assert_eq!(progress_fraction("Priprava podatkov za račun BC-MK-328 9 / 23"), Some(9.0 / 23.0));
/// assert_eq!(progress_fraction("Priprava podatkov"), None);
/// ```
pub fn progress_fraction(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let slashes = bytes
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'/')
        .map(|(i, _)| i);
    for slash in slashes {
        if let Some((done, total)) = pair_around(bytes, slash) {
            if total == 0 || done > total {
                return None;
            }
            return Some(done as f64 / total as f64);
        }
    }
    None
}

/// The numbers `N` and `M` of `N / M` around the slash at `slash`, if it is such a pair.
fn pair_around(bytes: &[u8], slash: usize) -> Option<(u64, u64)> {
    // Left: optional spaces, then digits not preceded by another digit run's slash.
    let mut end = slash;
    while end > 0 && bytes[end - 1] == b' ' {
        end -= 1;
    }
    let mut start = end;
    while start > 0 && bytes[start - 1].is_ascii_digit() {
        start -= 1;
    }
    if start == end || (start > 0 && bytes[start - 1] == b'/') {
        return None;
    }
    // Right: optional spaces, then digits not followed by another slash or digit.
    let mut from = slash + 1;
    while from < bytes.len() && bytes[from] == b' ' {
        from += 1;
    }
    let mut to = from;
    while to < bytes.len() && bytes[to].is_ascii_digit() {
        to += 1;
    }
    if from == to || bytes.get(to) == Some(&b'/') {
        return None;
    }
    // Only ASCII digits were taken, so these slices are valid UTF-8 on their own.
    let done = std::str::from_utf8(&bytes[start..end]).ok()?.parse().ok()?;
    let total = std::str::from_utf8(&bytes[from..to]).ok()?.parse().ok()?;
    Some((done, total))
}

#[cfg(test)]
mod tests {
    use super::progress_fraction as f;

    #[test]
    fn the_documented_text() {
        assert_eq!(
            f("Priprava podatkov za račun BC-MK-328 9 / 23"),
            Some(9.0 / 23.0)
        );
    }

    #[test]
    fn spacing_and_trailing_spaces() {
        assert_eq!(f("9/23"), Some(9.0 / 23.0));
        assert_eq!(f("Tiskanje 3 /4"), Some(0.75));
        assert_eq!(f("Tiskanje 3/ 4"), Some(0.75));
        assert_eq!(f("Tiskanje 1 / 4   "), Some(0.25));
        assert_eq!(f("Tiskanje 1 / 4\t\n"), Some(0.25));
    }

    #[test]
    fn edge_values() {
        assert_eq!(f("0 / 0"), None);
        assert_eq!(f("0 / 5"), Some(0.0));
        assert_eq!(f("23 / 23"), Some(1.0));
        assert_eq!(f("12/5"), None);
    }

    #[test]
    fn no_pair_no_fraction() {
        assert_eq!(f(""), None);
        assert_eq!(f("Priprava podatkov"), None);
        assert_eq!(f("račun BC-MK-328"), None);
        assert_eq!(f("/ 23"), None);
        assert_eq!(f("9 /"), None);
        assert_eq!(f("a / b"), None);
        assert_eq!(f("99999999999999999999999 / 1"), None);
    }

    #[test]
    fn the_last_pair_wins_and_dates_are_not_pairs() {
        assert_eq!(f("Korak 1 / 2: račun 3 / 4"), Some(0.75));
        assert_eq!(f("Račun z dne 12/5/2024"), None);
        assert_eq!(f("Račun z dne 12/5/2024, 2 / 8"), Some(0.25));
        assert_eq!(f("Korak 2 / 4 (račun BC-MK-328)"), Some(0.5));
    }
}
