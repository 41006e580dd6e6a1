//! What every `rrct stats` command shares at the edge: its JSON printing and the parsing of
//! comma-separated numeric arguments.

use anyhow::{bail, Context};
use serde::Serialize;

pub fn to_json<T: Serialize>(value: &T) -> anyhow::Result<String> {
    serde_json::to_string_pretty(value).context("cannot write the result as JSON")
}

pub fn parse_numbers(flag: &str, values: &[String]) -> anyhow::Result<Vec<f64>> {
    values
        .iter()
        .map(|v| match v.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(x),
            _ => bail!("{flag}: `{v}` is not a finite number"),
        })
        .collect()
}
