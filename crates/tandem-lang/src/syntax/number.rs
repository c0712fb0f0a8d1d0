//! Number literals, kept exact.
//!
//! `4k`, `4000`, `4e3` and `4.0e3` must give the same cache key, and `1e-5`
//! must equal `0.00001`. A literal is therefore stored as an exact decimal
//! (sign, digits, power of ten) and only converted at the end: to an integer
//! when it has no fractional part, or to the nearest f64 through Rust's
//! correctly rounded parser, so the same decimal value always gives the same
//! bits whichever way it was written.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number {
    negative: bool,
    /// Decimal digits with no leading zeros ("0" for zero).
    digits: String,
    /// value = digits × 10^exp10
    exp10: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberError {
    Malformed,
    ExponentTooLarge,
}

impl Number {
    /// Parses the text matched by the grammar's `number` rule.
    pub fn parse(text: &str) -> Result<Number, NumberError> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, text),
        };
        let (rest, suffix_exp) = if let Some(r) = rest.strip_suffix('k') {
            (r, 3)
        } else if let Some(r) = rest.strip_suffix('M') {
            (r, 6)
        } else {
            (rest, 0)
        };
        let (mantissa, exp_part) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let mut exp10: i64 = match exp_part {
            Some(e) => {
                let e = e.strip_prefix('+').unwrap_or(e);
                // More than a few digits of exponent is never a sensible value.
                if e.trim_start_matches('-').len() > 6 {
                    return Err(NumberError::ExponentTooLarge);
                }
                e.parse::<i64>().map_err(|_| NumberError::Malformed)?
            }
            None => 0,
        };
        exp10 += suffix_exp;
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        if int_part.is_empty()
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(NumberError::Malformed);
        }
        exp10 -= frac_part.len() as i64;
        let mut digits: String = format!("{int_part}{frac_part}").trim_start_matches('0').to_string();
        // Normalize: strip trailing zeros into the exponent.
        while digits.ends_with('0') {
            digits.pop();
            exp10 += 1;
        }
        if digits.is_empty() {
            return Ok(Number { negative: false, digits: "0".into(), exp10: 0 });
        }
        Ok(Number { negative, digits, exp10 })
    }

    pub fn from_i64(v: i64) -> Number {
        Number::parse(&v.to_string()).expect("an integer's decimal text is a number")
    }

    pub fn is_zero(&self) -> bool {
        self.digits == "0"
    }

    /// Whether the value is a whole number (however large).
    pub fn is_integral(&self) -> bool {
        self.exp10 >= 0 // normalized: a negative exponent means a fractional part
    }

    /// The exact integer value, if the number is integral and fits an i64.
    pub fn as_i64(&self) -> Option<i64> {
        if self.exp10 < 0 {
            return None; // normalized: a negative exponent means a fractional part
        }
        if self.digits.len() as i64 + self.exp10 > 19 {
            return None;
        }
        let mut v: i128 = self.digits.parse().ok()?;
        for _ in 0..self.exp10 {
            v *= 10;
        }
        if self.negative {
            v = -v;
        }
        i64::try_from(v).ok()
    }

    /// The nearest f64 (correctly rounded), or None if it overflows.
    pub fn as_f64(&self) -> Option<f64> {
        let text = format!("{}{}e{}", if self.negative { "-" } else { "" }, self.digits, self.exp10);
        let v: f64 = text.parse().ok()?;
        v.is_finite().then_some(v)
    }
}

impl std::fmt::Display for Number {
    /// A short canonical spelling: plain digits for integers that fit, otherwise
    /// the shortest round-trip float text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(i) = self.as_i64() {
            return write!(f, "{i}");
        }
        match self.as_f64() {
            Some(v) => write!(f, "{v:e}"),
            None => write!(f, "{}{}e{}", if self.negative { "-" } else { "" }, self.digits, self.exp10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Number {
        Number::parse(s).unwrap()
    }

    #[test]
    fn suffixes_and_exponents_agree() {
        assert_eq!(n("4k"), n("4000"));
        assert_eq!(n("4k"), n("4e3"));
        assert_eq!(n("4k"), n("4.0e3"));
        assert_eq!(n("4k"), n("0.004M"));
        assert_eq!(n("1.5M"), n("1500000"));
        assert_eq!(n("1e-5"), n("0.00001"));
        assert_eq!(n("1e-5"), n("10e-6"));
        assert_eq!(n("0"), n("0.000"));
        assert_eq!(n("-0"), n("0"));
    }

    #[test]
    fn integer_conversion_is_exact() {
        assert_eq!(n("4k").as_i64(), Some(4000));
        assert_eq!(n("20k").as_i64(), Some(20000));
        assert_eq!(n("-3").as_i64(), Some(-3));
        assert_eq!(n("2.5").as_i64(), None);
        assert_eq!(n("1.5k").as_i64(), Some(1500));
        assert_eq!(n("1e30").as_i64(), None);
        assert_eq!(n("9223372036854775807").as_i64(), Some(i64::MAX));
    }

    #[test]
    fn float_conversion_is_correctly_rounded() {
        assert_eq!(n("1e-5").as_f64(), Some(1e-5));
        assert_eq!(n("3e-6").as_f64(), Some(0.000003));
        assert_eq!(n("0.1").as_f64(), Some(0.1));
        assert_eq!(n("1e400").as_f64(), None);
        assert_eq!(Number::parse("1e9999999"), Err(NumberError::ExponentTooLarge));
    }
}
