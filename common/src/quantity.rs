//! Kubernetes resource quantities (`500m`, `128Mi`, `1.5`, `2e3`), held exactly in nano-units
//! so that cpu millicores and memory bytes round the way Kubernetes rounds them (up).

use std::fmt;

/// A parsed quantity, in units of 10^-9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Quantity {
    nanos: i128,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (got {0:?})")]
pub struct QuantityError(pub String);

const NANO: i128 = 1_000_000_000;

fn suffix_factor(suffix: &str) -> Option<(i128, i128)> {
    // (multiplier, divisor) applied to nano-units of the mantissa.
    Some(match suffix {
        "" => (1, 1),
        "n" => (1, NANO),
        "u" => (1, 1_000_000),
        "m" => (1, 1_000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        _ => return None,
    })
}

impl Quantity {
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let err = || QuantityError(s.to_string());
        let trimmed = s.trim();
        if trimmed.is_empty() || trimmed != s {
            return Err(err());
        }
        let (negative, rest) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(err());
        }
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        let mut nanos: i128 = 0;
        for b in whole.bytes() {
            nanos = nanos
                .checked_mul(10)
                .and_then(|n| n.checked_add((b - b'0') as i128))
                .ok_or_else(err)?;
        }
        nanos = nanos.checked_mul(NANO).ok_or_else(err)?;
        let mut scale = NANO / 10;
        let mut remainder = false;
        for b in frac.bytes() {
            if scale == 0 {
                // Below a nano-unit: remember it so the value rounds up like Kubernetes does.
                remainder |= b != b'0';
                continue;
            }
            nanos += (b - b'0') as i128 * scale;
            scale /= 10;
        }
        if remainder {
            nanos += 1;
        }
        let nanos = if let Some((mul, div)) = suffix_factor(suffix) {
            let n = nanos.checked_mul(mul).ok_or_else(err)?;
            (n + div - 1) / div
        } else if let Some(exp) = suffix.strip_prefix(['e', 'E']) {
            let exp: i32 = exp.parse().map_err(|_| err())?;
            if !(-18..=18).contains(&exp) {
                return Err(err());
            }
            if exp >= 0 {
                nanos.checked_mul(10i128.pow(exp as u32)).ok_or_else(err)?
            } else {
                let div = 10i128.pow((-exp) as u32);
                (nanos + div - 1) / div
            }
        } else {
            return Err(err());
        };
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
        })
    }

    pub fn from_milli(milli: i64) -> Quantity {
        Quantity {
            nanos: milli as i128 * 1_000_000,
        }
    }

    pub fn from_units(units: i64) -> Quantity {
        Quantity {
            nanos: units as i128 * NANO,
        }
    }

    /// Thousandths, rounded up (cpu millicores).
    pub fn milli(&self) -> i64 {
        let m =
            self.nanos.div_euclid(1_000_000) + i128::from(self.nanos.rem_euclid(1_000_000) != 0);
        m.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    /// Whole units, rounded up (memory bytes, pod counts).
    pub fn units(&self) -> i64 {
        let u = self.nanos.div_euclid(NANO) + i128::from(self.nanos.rem_euclid(NANO) != 0);
        u.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }
}

impl fmt::Display for Quantity {
    /// A canonical form: whole units when exact, else millis, else nanos.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos % NANO == 0 {
            write!(f, "{}", self.nanos / NANO)
        } else if self.nanos % 1_000_000 == 0 {
            write!(f, "{}m", self.nanos / 1_000_000)
        } else {
            write!(f, "{}n", self.nanos)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_forms() {
        assert_eq!(Quantity::parse("500m").unwrap().milli(), 500);
        assert_eq!(Quantity::parse("1.5").unwrap().milli(), 1500);
        assert_eq!(Quantity::parse("2").unwrap().milli(), 2000);
        assert_eq!(Quantity::parse("128Mi").unwrap().units(), 128 << 20);
        assert_eq!(Quantity::parse("1G").unwrap().units(), 1_000_000_000);
        assert_eq!(Quantity::parse("1e3").unwrap().units(), 1000);
        assert_eq!(Quantity::parse("0.1").unwrap().milli(), 100);
        assert_eq!(Quantity::parse("+4k").unwrap().units(), 4000);
    }

    #[test]
    fn rounds_up_like_kubernetes() {
        assert_eq!(Quantity::parse("1n").unwrap().milli(), 1);
        assert_eq!(Quantity::parse("1500m").unwrap().units(), 2);
        assert_eq!(Quantity::parse("0.0001").unwrap().milli(), 1);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "abc", "1.2.3", "12x", "1Mb", " 1", "--1", "."] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn negative_values_are_detected() {
        assert!(Quantity::parse("-1").unwrap().is_negative());
        assert!(!Quantity::parse("0").unwrap().is_negative());
    }
}
