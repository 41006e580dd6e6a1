//! The CSV tables `rrct stats` reads: the survival columns and the numeric and label columns a
//! command names, with rows missing any of them dropped and counted, and a value that should be
//! a number but is not refused by data row, file line and column (see [`super::stats`] for the
//! rules a user reads).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};

/// The complete rows of the columns a command uses.
pub struct Table {
    pub time: Vec<f64>,
    pub event: Vec<bool>,
    pub numbers: HashMap<String, Vec<f64>>,
    pub labels: HashMap<String, Labels>,
    pub n_dropped: usize,
    /// The data row (1-based, header excluded) of each kept row, for located errors.
    pub rows: Vec<usize>,
}

/// A text (or numeric) column read as levels.
pub struct Labels {
    /// Level of each kept row, an index into `levels`.
    pub codes: Vec<usize>,
    /// Level names in order: numeric when all parse as numbers, else by bytes.
    pub levels: Vec<String>,
}

impl Labels {
    /// The level equal to `value`, as text or as a number.
    pub fn find(&self, value: &str) -> Option<usize> {
        let value = value.trim();
        self.levels.iter().position(|l| l == value).or_else(|| {
            let v = value.parse::<f64>().ok()?;
            self.levels
                .iter()
                .position(|l| l.parse::<f64>().ok() == Some(v))
        })
    }
}

impl Table {
    pub fn numbers(&self, name: &str) -> &[f64] {
        self.numbers.get(name).map_or(&[], Vec::as_slice)
    }
    pub fn labels(&self, name: &str) -> &Labels {
        // Every label column asked for here was read by `read`, which fails otherwise.
        static EMPTY: Labels = Labels {
            codes: Vec::new(),
            levels: Vec::new(),
        };
        self.labels.get(name).unwrap_or(&EMPTY)
    }
}

/// A field as trimmed text; a missing trailing field reads as empty.
fn field_text(record: &csv::ByteRecord, col: usize) -> Result<&str, std::str::Utf8Error> {
    std::str::from_utf8(record.get(col).unwrap_or(b"")).map(str::trim)
}

fn is_missing(field: &str) -> bool {
    matches!(field, "" | "NA" | "NaN")
}

enum Role {
    Time,
    Event,
    Number(usize),
    Label(usize),
}

/// Reads the survival columns, the numeric columns `numbers` and the label columns `labels`.
pub fn read(
    path: &Path,
    time: &str,
    event: &str,
    numbers: &[&str],
    labels: &[&str],
) -> anyhow::Result<Table> {
    read_columns(path, Some(time), Some(event), numbers, labels)
}

/// [`read`] with the time and event columns optional (a command without them gets empty
/// `time`/`event`); a time column is still checked to be non-negative, by row.
pub fn read_columns(
    path: &Path,
    time: Option<&str>,
    event: Option<&str>,
    numbers: &[&str],
    labels: &[&str],
) -> anyhow::Result<Table> {
    // Fields are trimmed one by one below: the csv crate's own trimming rebuilds every record
    // and costs more than the parsing.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header row", path.display()))?
        .clone();
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}').trim() == name)
            .with_context(|| format!("{}: no column `{name}` in the header", path.display()))
    };
    let mut roles: Vec<(usize, Role, &str)> = Vec::new();
    if let Some(time) = time {
        roles.push((find(time)?, Role::Time, time));
    }
    if let Some(event) = event {
        roles.push((find(event)?, Role::Event, event));
    }
    for (i, name) in numbers.iter().enumerate() {
        roles.push((find(name)?, Role::Number(i), name));
    }
    for (i, name) in labels.iter().enumerate() {
        roles.push((find(name)?, Role::Label(i), name));
    }

    let mut time = Vec::new();
    let mut event_raw = Vec::new();
    let mut event_row = Vec::new();
    let mut number_values: Vec<Vec<f64>> = vec![Vec::new(); numbers.len()];
    let mut label_codes: Vec<Vec<usize>> = vec![Vec::new(); labels.len()];
    let mut label_index: Vec<HashMap<String, usize>> = vec![HashMap::new(); labels.len()];
    let mut label_names: Vec<Vec<String>> = vec![Vec::new(); labels.len()];
    let mut n_dropped = 0usize;
    let mut kept_rows = Vec::new();
    let mut parsed: Vec<f64> = vec![0.0; roles.len()];
    let mut record = csv::ByteRecord::new();
    let mut row = 0usize;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                // The csv crate counts the header as record 0, so its record is our data row.
                let at = e.position().map_or_else(String::new, |p| {
                    format!(" at data row {} (line {})", p.record(), p.line())
                });
                bail!("{}{at}: {e}", path.display())
            }
        }
        row += 1;
        let line = record.position().map_or(row as u64 + 1, |p| p.line());
        let mut missing = false;
        for (k, (col, role, name)) in roles.iter().enumerate() {
            let at = || {
                format!(
                    "{}: data row {row} (line {line}), column `{name}`",
                    path.display()
                )
            };
            let Ok(field) = field_text(&record, *col) else {
                bail!("{}: the value is not valid UTF-8", at());
            };
            if is_missing(field) {
                missing = true;
                continue;
            }
            match role {
                Role::Label(_) => {}
                Role::Event => {
                    parsed[k] = match field {
                        "TRUE" | "T" | "true" => 1.0,
                        "FALSE" | "F" | "false" => 0.0,
                        _ => match field.parse::<f64>() {
                            Ok(v) if v.is_finite() => v,
                            _ => bail!(
                                "{}: `{field}` is not an event indicator (0/1, 1/2 or TRUE/FALSE)",
                                at()
                            ),
                        },
                    }
                }
                Role::Time | Role::Number(_) => {
                    parsed[k] = match field.parse::<f64>() {
                        Ok(v) if v.is_finite() => v,
                        _ => bail!("{}: `{field}` is not a finite number", at()),
                    };
                    if matches!(role, Role::Time) && parsed[k] < 0.0 {
                        bail!("{}: time `{field}` is negative", at());
                    }
                }
            }
        }
        if missing {
            n_dropped += 1;
            continue;
        }
        kept_rows.push(row);
        for (k, (col, role, _)) in roles.iter().enumerate() {
            match role {
                Role::Time => time.push(parsed[k]),
                Role::Event => {
                    event_raw.push(parsed[k]);
                    event_row.push((row, line));
                }
                Role::Number(i) => number_values[*i].push(parsed[k]),
                Role::Label(i) => {
                    let field = field_text(&record, *col).unwrap_or("");
                    let code = match label_index[*i].get(field) {
                        Some(&code) => code,
                        None => {
                            let code = label_names[*i].len();
                            label_index[*i].insert(field.to_string(), code);
                            label_names[*i].push(field.to_string());
                            code
                        }
                    };
                    label_codes[*i].push(code);
                }
            }
        }
    }
    if row == n_dropped {
        bail!(
            "{}: no complete rows ({n_dropped} dropped for missing values)",
            path.display()
        );
    }
    let event = match event {
        Some(name) => event_indicators(&event_raw, &event_row, path, name)?,
        None => Vec::new(),
    };
    let labels_out = labels
        .iter()
        .zip(label_codes.into_iter().zip(label_names))
        .map(|(name, (codes, names))| (name.to_string(), ordered(codes, names)))
        .collect();
    let numbers_out = numbers
        .iter()
        .zip(number_values)
        .map(|(name, values)| (name.to_string(), values))
        .collect();
    Ok(Table {
        time,
        event,
        numbers: numbers_out,
        labels: labels_out,
        n_dropped,
        rows: kept_rows,
    })
}

/// R's `Surv` rule: values 0/1, or 1/2 when the largest value is 2.
fn event_indicators(
    raw: &[f64],
    rows: &[(usize, u64)],
    path: &Path,
    column: &str,
) -> anyhow::Result<Vec<bool>> {
    let shift = if raw.iter().copied().fold(f64::NEG_INFINITY, f64::max) == 2.0 {
        1.0
    } else {
        0.0
    };
    raw.iter()
        .zip(rows)
        .map(|(&v, &(row, line))| {
            let x = v - shift;
            if x == 0.0 {
                return Ok(false);
            }
            if x == 1.0 {
                return Ok(true);
            }
            bail!(
                "{}: data row {row} (line {line}), column `{column}`: `{v}` is not an event \
                 indicator (0/1, or 1/2 with 2 = event)",
                path.display()
            )
        })
        .collect()
}

/// Renumbers first-appearance codes into level order.
fn ordered(codes: Vec<usize>, names: Vec<String>) -> Labels {
    let numeric: Option<Vec<f64>> = names.iter().map(|n| n.parse::<f64>().ok()).collect();
    let mut order: Vec<usize> = (0..names.len()).collect();
    match &numeric {
        Some(values) => order.sort_by(|&a, &b| values[a].total_cmp(&values[b])),
        None => order.sort_by(|&a, &b| names[a].as_bytes().cmp(names[b].as_bytes())),
    }
    let mut rank = vec![0usize; names.len()];
    for (r, &old) in order.iter().enumerate() {
        rank[old] = r;
    }
    Labels {
        codes: codes.into_iter().map(|c| rank[c]).collect(),
        levels: order.into_iter().map(|i| names[i].clone()).collect(),
    }
}
