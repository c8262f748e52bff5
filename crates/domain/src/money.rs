//! Money in integer minor units with its currency. Hostaway sends amounts as JSON
//! numbers that are an int in one record and a float in the next (and sometimes a
//! string); they are converted from their decimal text, never through `f64`
//! arithmetic, so `483.47` is exactly 48347 cents.

use std::fmt;

/// An ISO 4217 alphabetic code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("currency must be a three-letter ISO 4217 code")]
    BadCurrency,
    #[error("amount is not a decimal number")]
    NotANumber,
    #[error("amount is negative")]
    Negative,
    #[error("amount exceeds {max} major units")]
    TooLarge { max: i64 },
}

/// Currencies whose minor unit is not a hundredth (ISO 4217 exponents).
const ZERO_DECIMAL: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];
const THREE_DECIMAL: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

impl Currency {
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let bytes = code.trim().as_bytes();
        match bytes {
            [a, b, c] if bytes.iter().all(u8::is_ascii_alphabetic) => Ok(Self([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
                c.to_ascii_uppercase(),
            ])),
            _ => Err(MoneyError::BadCurrency),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits after the decimal point of the currency's minor unit.
    pub fn minor_exponent(&self) -> u32 {
        let code = self.as_str();
        if ZERO_DECIMAL.contains(&code) {
            0
        } else if THREE_DECIMAL.contains(&code) {
            3
        } else {
            2
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A non-negative amount in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor_units: i64,
    currency: Currency,
}

impl Money {
    /// No stay costs a hundred million in any currency's major unit; a larger
    /// figure is a bug or an attack, and is refused rather than stored.
    pub const MAX_MAJOR_UNITS: i64 = 100_000_000;

    pub fn from_minor_units(minor_units: i64, currency: Currency) -> Result<Self, MoneyError> {
        if minor_units < 0 {
            return Err(MoneyError::Negative);
        }
        let limit = Self::MAX_MAJOR_UNITS * 10_i64.pow(currency.minor_exponent());
        if minor_units > limit {
            return Err(MoneyError::TooLarge {
                max: Self::MAX_MAJOR_UNITS,
            });
        }
        Ok(Self {
            minor_units,
            currency,
        })
    }

    /// Converts a decimal text (`"483.47"`, `"267"`, `"1.5e3"`) in major units,
    /// rounding half away from zero to the currency's minor unit.
    pub fn from_decimal(text: &str, currency: Currency) -> Result<Self, MoneyError> {
        let decimal = Decimal::parse(text.trim())?;
        if decimal.negative && decimal.digits != 0 {
            return Err(MoneyError::Negative);
        }
        let minor = decimal.rescale(currency.minor_exponent() as i32)?;
        let minor = i64::try_from(minor).map_err(|_| MoneyError::TooLarge {
            max: Self::MAX_MAJOR_UNITS,
        })?;
        Self::from_minor_units(minor, currency)
    }

    pub fn minor_units(&self) -> i64 {
        self.minor_units
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = self.currency.minor_exponent();
        if exp == 0 {
            return write!(f, "{} {}", self.minor_units, self.currency);
        }
        let scale = 10_i64.pow(exp);
        write!(
            f,
            "{}.{:0width$} {}",
            self.minor_units / scale,
            self.minor_units % scale,
            self.currency,
            width = exp as usize
        )
    }
}

/// A parsed decimal: `digits × 10^exponent`, sign apart.
struct Decimal {
    negative: bool,
    digits: u128,
    exponent: i32,
}

/// More significant digits than any real amount has; beyond this is refused.
const MAX_DIGITS: usize = 30;

impl Decimal {
    fn parse(text: &str) -> Result<Self, MoneyError> {
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exp_part) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(MoneyError::NotANumber);
        }
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int_part) || !all_digits(frac_part) {
            return Err(MoneyError::NotANumber);
        }
        let significant = format!("{int_part}{frac_part}");
        let significant = significant.trim_start_matches('0');
        if significant.len() > MAX_DIGITS {
            return Err(MoneyError::TooLarge {
                max: Money::MAX_MAJOR_UNITS,
            });
        }
        let digits = if significant.is_empty() {
            0
        } else {
            significant
                .parse::<u128>()
                .map_err(|_| MoneyError::NotANumber)?
        };
        let exp_value = match exp_part {
            Some(e) => e.parse::<i32>().map_err(|_| MoneyError::NotANumber)?,
            None => 0,
        };
        let frac_len = i32::try_from(frac_part.len()).map_err(|_| MoneyError::NotANumber)?;
        Ok(Self {
            negative,
            digits,
            exponent: exp_value
                .checked_sub(frac_len)
                .ok_or(MoneyError::NotANumber)?,
        })
    }

    /// The value in units of 10^-scale, rounded half away from zero.
    fn rescale(&self, scale: i32) -> Result<u128, MoneyError> {
        let too_large = MoneyError::TooLarge {
            max: Money::MAX_MAJOR_UNITS,
        };
        let Some(shift) = self.exponent.checked_add(scale) else {
            return if self.exponent > 0 {
                Err(too_large)
            } else {
                Ok(0)
            };
        };
        if self.digits == 0 {
            return Ok(0);
        }
        if shift >= 0 {
            let factor = 10_u128.checked_pow(shift as u32).ok_or(too_large.clone())?;
            self.digits.checked_mul(factor).ok_or(too_large)
        } else {
            let drop = (-shift) as u32;
            if drop > 38 {
                return Ok(0);
            }
            let divisor = 10_u128.pow(drop);
            let quotient = self.digits / divisor;
            let remainder = self.digits % divisor;
            Ok(if remainder * 2 >= divisor {
                quotient + 1
            } else {
                quotient
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    #[test]
    fn converts_floats_ints_and_strings_exactly() {
        assert_eq!(
            Money::from_decimal("483.47", usd()).unwrap().minor_units(),
            48347
        );
        assert_eq!(
            Money::from_decimal("267", usd()).unwrap().minor_units(),
            26700
        );
        assert_eq!(
            Money::from_decimal("9.1", usd()).unwrap().minor_units(),
            910
        );
        assert_eq!(Money::from_decimal("0", usd()).unwrap().minor_units(), 0);
        assert_eq!(
            Money::from_decimal("1.5e3", usd()).unwrap().minor_units(),
            150_000
        );
        assert_eq!(
            Money::from_decimal(" 696.67 ", usd())
                .unwrap()
                .minor_units(),
            69667
        );
    }

    #[test]
    fn rounds_half_away_from_zero_to_the_minor_unit() {
        assert_eq!(
            Money::from_decimal("0.125", usd()).unwrap().minor_units(),
            13
        );
        assert_eq!(
            Money::from_decimal("0.124", usd()).unwrap().minor_units(),
            12
        );
        let jpy = Currency::parse("jpy").unwrap();
        assert_eq!(
            Money::from_decimal("1234.5", jpy).unwrap().minor_units(),
            1235
        );
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(
            Money::from_decimal("1.2345", kwd).unwrap().minor_units(),
            1235
        );
    }

    #[test]
    fn refuses_absurd_amounts() {
        assert_eq!(Money::from_decimal("-1", usd()), Err(MoneyError::Negative));
        assert!(matches!(
            Money::from_decimal("100000000.01", usd()),
            Err(MoneyError::TooLarge { .. })
        ));
        assert!(matches!(
            Money::from_decimal("1e300", usd()),
            Err(MoneyError::TooLarge { .. })
        ));
        assert!(matches!(
            Money::from_decimal("1e2147483647", usd()),
            Err(MoneyError::TooLarge { .. })
        ));
        assert_eq!(
            Money::from_decimal("1e-2147483648", usd())
                .unwrap()
                .minor_units(),
            0
        );
        for bad in [
            "", ".", "abc", "1.2.3", "NaN", "Infinity", "1e", "0x10", "1,5",
        ] {
            assert!(Money::from_decimal(bad, usd()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_limit_itself_is_accepted() {
        assert!(Money::from_decimal("100000000", usd()).is_ok());
    }

    #[test]
    fn currency_codes_are_three_letters() {
        assert_eq!(Currency::parse("eur").unwrap().as_str(), "EUR");
        for bad in ["", "EU", "EURO", "E1R", "€€€"] {
            assert!(Currency::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn displays_major_and_minor_units() {
        assert_eq!(
            Money::from_decimal("483.47", usd()).unwrap().to_string(),
            "483.47 USD"
        );
        assert_eq!(
            Money::from_decimal("5.06", usd()).unwrap().to_string(),
            "5.06 USD"
        );
    }
}
