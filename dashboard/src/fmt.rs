//! Formatting numbers for people: money, counts, durations, rates.
//!
//! Invariants: money is formatted from `Decimal` without rounding (exact
//! decimals, at least two places); machine formats (CSV, JSON) use
//! [`Money::plain`], never the grouped display form.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;
use serde::Serialize;

/// An exact amount in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Money {
    pub amount: Decimal,
    pub currency: String,
}

impl Money {
    /// The exact amount, no grouping: `1234.5000123`.
    pub fn plain(&self) -> String {
        plain_decimal(self.amount)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = group_decimal(&self.plain());
        match self.currency.as_str() {
            "USD" => write!(f, "${text}"),
            "" => write!(f, "{text}"),
            c => write!(f, "{text} {c}"),
        }
    }
}

/// Sums per currency (a period may mix currencies; they are never added).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoneySet(pub BTreeMap<String, Decimal>);

impl MoneySet {
    pub fn add(&mut self, currency: &str, amount: Decimal) {
        if currency.is_empty() && amount.is_zero() {
            return;
        }
        *self.0.entry(currency.to_string()).or_default() += amount;
    }

    pub fn merge(&mut self, other: &MoneySet) {
        for (c, a) in &other.0 {
            self.add(c, *a);
        }
    }

    pub fn items(&self) -> Vec<Money> {
        self.0
            .iter()
            .map(|(c, a)| Money {
                amount: *a,
                currency: c.clone(),
            })
            .collect()
    }

    /// The amount in `currency` (zero when absent).
    pub fn get(&self, currency: &str) -> Decimal {
        self.0.get(currency).copied().unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Exact text for CSV: `12.5 USD; 3 EUR`, or `0` when nothing was priced.
    pub fn plain(&self) -> String {
        if self.0.is_empty() {
            return "0".to_string();
        }
        self.items()
            .iter()
            .map(|m| format!("{} {}", m.plain(), m.currency))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl fmt::Display for MoneySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("$0.00");
        }
        let parts: Vec<String> = self.items().iter().map(|m| m.to_string()).collect();
        f.write_str(&parts.join(" + "))
    }
}

impl Serialize for MoneySet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.items())
    }
}

/// `Decimal` as exact text with at least two decimals: `0.000123`, `12.50`.
pub fn plain_decimal(d: Decimal) -> String {
    let n = d.normalize();
    if n.scale() >= 2 {
        n.to_string()
    } else {
        let mut x = n;
        x.rescale(2);
        x.to_string()
    }
}

/// Groups the integer part of a plain decimal with thin commas: `1,234.5`.
fn group_decimal(s: &str) -> String {
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", s),
    };
    let (int, frac) = match rest.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (rest, None),
    };
    let mut out = String::with_capacity(s.len() + 4);
    out.push_str(sign);
    out.push_str(&group_int(int));
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

fn group_int(digits: &str) -> String {
    let n = digits.len();
    let mut out = String::with_capacity(n + n / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (n - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1,234,567`.
pub fn count(n: impl Borrow<u64>) -> String {
    group_int(&n.borrow().to_string())
}

/// A rate as a percentage with one decimal, or `–` when there is no denominator.
pub fn pct(num: u64, den: u64) -> String {
    if den == 0 {
        return "–".to_string();
    }
    format!("{:.1}%", num as f64 * 100.0 / den as f64)
}

/// Milliseconds for people: `850 ms`, `1.24 s`, `2 m 05 s`.
pub fn ms(v: f64) -> String {
    if !v.is_finite() {
        "–".to_string()
    } else if v < 1.0 {
        format!("{v:.2} ms")
    } else if v < 1000.0 {
        format!("{v:.0} ms")
    } else if v < 60_000.0 {
        format!("{:.2} s", v / 1000.0)
    } else {
        let s = (v / 1000.0).round() as u64;
        format!("{} m {:02} s", s / 60, s % 60)
    }
}

/// Nanoseconds for people (see [`ms`]).
pub fn ns(v: u64) -> String {
    ms(v as f64 / 1e6)
}

/// An optional token count: absent is "not reported", shown as `–`, never 0.
pub fn opt_count(v: impl Borrow<Option<u64>>) -> String {
    v.borrow().map(count).unwrap_or_else(|| "–".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn money_is_exact_and_grouped_for_people_only() {
        let m = Money {
            amount: d("1234567.000123400000"),
            currency: "USD".into(),
        };
        assert_eq!(m.plain(), "1234567.0001234");
        assert_eq!(m.to_string(), "$1,234,567.0001234");
        let e = Money {
            amount: d("12"),
            currency: "EUR".into(),
        };
        assert_eq!(e.to_string(), "12.00 EUR");
        assert_eq!(plain_decimal(d("-0.5")), "-0.50");
    }

    #[test]
    fn money_sets_never_mix_currencies() {
        let mut s = MoneySet::default();
        s.add("USD", d("1.10"));
        s.add("EUR", d("2"));
        s.add("USD", d("0.000000000001"));
        s.add("", Decimal::ZERO);
        assert_eq!(s.plain(), "2.00 EUR; 1.100000000001 USD");
        assert_eq!(s.to_string(), "2.00 EUR + $1.100000000001");
        assert_eq!(MoneySet::default().plain(), "0");
    }

    #[test]
    fn counts_rates_and_durations() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(pct(1, 3), "33.3%");
        assert_eq!(pct(1, 0), "–");
        assert_eq!(ms(850.4), "850 ms");
        assert_eq!(ms(1240.0), "1.24 s");
        assert_eq!(ms(125_000.0), "2 m 05 s");
        assert_eq!(opt_count(None), "–");
    }
}
