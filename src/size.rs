//! Sizes of files, as people write and read them: `500M`, `10G`, `1.5 GB`, `2GiB`.
//! Units are powers of 1024 whether written `G`, `GB` or `GiB`, as `du -h` and `df -h`
//! print them.

const UNITS: [(&str, u64); 5] = [
    ("", 1),
    ("K", 1 << 10),
    ("M", 1 << 20),
    ("G", 1 << 30),
    ("T", 1 << 40),
];

/// A size: a number, optionally with a fraction, and a unit (`B`, `K`, `M`, `G`, `T`,
/// each also as `KB`, `KiB`, …); a bare number is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("'{text}' is not a size: write it as 500M, 10G or 2.5GiB");
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("iB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(unit);
    let scale = UNITS
        .iter()
        .find(|(u, _)| u.eq_ignore_ascii_case(unit))
        .map(|(_, s)| *s)
        .ok_or_else(bad)?;
    let n: f64 = number.parse().map_err(|_| bad())?;
    let bytes = n * scale as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// A size for people: `812 B`, `4.2 MB`, `1.3 GB` (powers of 1024).
pub fn format_size(bytes: u64) -> String {
    let (unit, scale) = UNITS
        .iter()
        .rev()
        .find(|(_, s)| bytes >= *s)
        .copied()
        .unwrap_or(("", 1));
    if scale == 1 {
        format!("{bytes} B")
    } else {
        format!("{:.1} {unit}B", bytes as f64 / scale as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_every_usual_spelling() {
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("10 GB"), Ok(10 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["", "G", "ten", "0", "-1G", "5X", "1e3G", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_print_with_one_decimal_in_the_largest_unit() {
        assert_eq!(format_size(812), "812 B");
        assert_eq!(format_size(4_404_019), "4.2 MB");
        assert_eq!(format_size(256 << 20), "256.0 MB");
        assert_eq!(format_size(3 << 40), "3.0 TB");
    }
}
