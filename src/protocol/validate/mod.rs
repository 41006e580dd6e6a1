//! Phase 2: turn a [`RawProtocol`] into a [`Protocol`], collecting every problem instead of
//! stopping at the first, each pointing at the value it is about.
//!
//! A name that was declared but is itself invalid (a field of unknown type, say) is remembered
//! as broken, so references to it are not reported a second time as "undeclared".

mod analysis;
mod criteria;
mod endpoints;
mod fields;
pub(crate) mod limits;
mod monitoring;
mod randomisation;
mod sources;

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use toml::Spanned;

use super::error::Finding;
use super::model::{
    Arm, ConsentModel, DerivedField, FieldKind, FieldSpec, Masking, Method, Protocol, Site,
    TrialStatus,
};
use super::raw::{RawArm, RawProtocol, RawSite};

/// Collects findings while validation carries on past them.
#[derive(Default)]
struct Checker {
    findings: Vec<Finding>,
    broken: HashSet<String>,
}

impl Checker {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.findings.push((span, message.into()));
    }

    fn is_broken(&self, name: &str) -> bool {
        self.broken.contains(name)
    }
}

/// Where a protocol names something a value can be read from: `site`, an enrolment field or a
/// derived field (criteria and strata refer to these).
#[derive(Clone, Copy)]
enum Source<'a> {
    Site(&'a [Site]),
    Field(&'a FieldSpec),
    Derived(&'a DerivedField),
}

struct Scope<'a> {
    sites: &'a [Site],
    fields: &'a [FieldSpec],
    derived: &'a [DerivedField],
}

impl<'a> Scope<'a> {
    fn resolve(&self, name: &str) -> Option<Source<'a>> {
        if name == "site" {
            return Some(Source::Site(self.sites));
        }
        if let Some(field) = self.fields.iter().find(|f| f.name == name) {
            return Some(Source::Field(field));
        }
        self.derived
            .iter()
            .find(|d| d.name == name)
            .map(Source::Derived)
    }
}

impl Source<'_> {
    /// How messages refer to it: "`site`", "integer field `age`", "derived field `age_band`".
    fn describe(&self) -> String {
        match self {
            Source::Site(_) => "`site`".to_string(),
            Source::Field(f) => format!("{} field `{}`", f.kind.type_name(), f.name),
            Source::Derived(d) => format!("derived field `{}`", d.name),
        }
    }
}

pub(super) fn validate(raw: RawProtocol) -> Result<Protocol, Vec<Finding>> {
    let mut c = Checker::default();

    let trial_id = raw.id.get_ref().clone();
    if !is_trial_id(&trial_id) {
        c.error(
            raw.id.span(),
            format!(
                "trial id `{trial_id}` must be lower-case letters, digits, `_` and `-`, \
                 starting with a letter or digit"
            ),
        );
    }
    let title = non_empty(&mut c, raw.title, "title");
    if raw.version.get_ref().trim().is_empty() {
        c.error(raw.version.span(), "version must not be empty");
    } else if crate::protocol::ProtocolVersion::parse(raw.version.get_ref()).is_none() {
        c.error(
            raw.version.span(),
            format!(
                "version `{}` must be whole numbers separated by dots, e.g. 1.0 or 2.1.3, so that \
                 an amendment can be seen to raise it",
                raw.version.get_ref()
            ),
        );
    }
    let version = raw.version.into_inner();
    let status = match raw.status {
        None => TrialStatus::Recruiting,
        Some(s) => TrialStatus::parse(s.get_ref()).unwrap_or_else(|| {
            c.error(
                s.span(),
                format!(
                    "unknown status `{}`; expected planned, recruiting, paused or closed",
                    s.get_ref()
                ),
            );
            TrialStatus::Planned
        }),
    };
    let consent = ConsentModel::parse(raw.consent.get_ref()).unwrap_or_else(|| {
        c.error(
            raw.consent.span(),
            format!(
                "unknown consent model `{}`; expected oral, written, deferred, opt_out or waiver",
                raw.consent.get_ref()
            ),
        );
        ConsentModel::Written
    });
    let deferred_consent_days = match (consent, raw.deferred_consent_days) {
        (ConsentModel::Deferred, Some(days)) => match u32::try_from(*days.get_ref()) {
            Ok(d) if (1..=3650).contains(&d) => Some(d),
            _ => {
                c.error(
                    days.span(),
                    format!(
                        "deferred_consent_days must be a whole number of days from 1 to 3650, got {}",
                        days.get_ref()
                    ),
                );
                None
            }
        },
        (ConsentModel::Deferred, None) => {
            c.error(
                raw.consent.span(),
                "a deferred consent model needs `deferred_consent_days`: the days within which \
                 consent must be confirmed after randomisation",
            );
            None
        }
        (_, Some(days)) => {
            c.error(
                days.span(),
                format!(
                    "deferred_consent_days applies only to the `deferred` consent model, not `{}`",
                    consent.as_str()
                ),
            );
            None
        }
        (_, None) => None,
    };
    let data_use_withdrawal = raw.data_use_withdrawal.is_some_and(|b| *b.get_ref());
    // Absent: blinded, so that no arm leaves rrct unless the protocol says the trial is open.
    let masking = match raw.masking {
        None => Masking::Blinded,
        Some(m) => Masking::parse(m.get_ref()).unwrap_or_else(|| {
            c.error(
                m.span(),
                format!(
                    "unknown masking `{}`; expected open_label or blinded",
                    m.get_ref()
                ),
            );
            Masking::Blinded
        }),
    };
    let target_sample_size = match u32::try_from(*raw.target_sample_size.get_ref()) {
        Ok(n) if n > 0 => n,
        _ => {
            c.error(
                raw.target_sample_size.span(),
                format!(
                    "target_sample_size must be a positive whole number, got {}",
                    raw.target_sample_size.get_ref()
                ),
            );
            0
        }
    };
    let ethics_approval = raw
        .ethics_approval
        .map(|e| non_empty(&mut c, e, "ethics_approval"));

    let sites = sites(&mut c, raw.sites);
    let mut closed_spans = Vec::new();
    let (arms, arms_valid) = arms(&mut c, raw.arms, &mut closed_spans);
    let fields = fields::fields(&mut c, raw.fields);
    let derived = fields::derived(&mut c, raw.derived, &fields);
    let scope = Scope {
        sites: &sites,
        fields: &fields,
        derived: &derived,
    };
    let mut criterion_ids = HashMap::new();
    let inclusion = criteria::criteria(
        &mut c,
        raw.inclusion,
        "inclusion",
        &scope,
        &mut criterion_ids,
    );
    let exclusion = criteria::criteria(
        &mut c,
        raw.exclusion,
        "exclusion",
        &scope,
        &mut criterion_ids,
    );
    let arms_for_blocks = arms_valid.then_some(arms.as_slice());
    let randomisation =
        randomisation::randomisation(&mut c, raw.randomisation, arms_for_blocks, &scope);
    if matches!(randomisation.method, Method::PermutedBlocks { .. }) {
        for span in closed_spans {
            c.error(
                span,
                "permuted blocks cannot close an arm: every block holds each arm in its ratio; \
                 randomise with simple randomisation or minimisation to close arms as you go",
            );
        }
    }
    let declared = endpoints::endpoints(&mut c, raw.endpoints);
    let censor_spans: Vec<(String, Range<usize>)> = raw
        .follow_up
        .censor_on
        .as_ref()
        .map(|list| {
            list.get_ref()
                .iter()
                .map(|t| (t.get_ref().clone(), t.span()))
                .collect()
        })
        .unwrap_or_default();
    let mut follow_up = endpoints::follow_up(&mut c, raw.follow_up, &declared);
    let (declared_sources, precedence) = sources::sources(
        &mut c,
        raw.sources,
        raw.precedence,
        follow_up.reporting_lag_days,
        &declared.outcome_spans,
        &censor_spans,
    );
    follow_up.sources = declared_sources;
    follow_up.precedence = precedence;
    let monitoring = raw
        .monitoring
        .map(|m| monitoring::monitoring(&mut c, m, &declared.endpoints, arms.len()));

    let plan_scope = analysis::PlanScope {
        scope: &scope,
        strata: &randomisation.strata,
        endpoints: &declared.endpoints,
        written: declared
            .outcome_spans
            .iter()
            .map(|(_, e, _)| e.as_str())
            .chain(declared.endpoints.iter().map(|e| e.id.as_str()))
            .fold(Vec::new(), |mut v, e| {
                if !v.contains(&e) {
                    v.push(e);
                }
                v
            }),
    };
    let analysis = analysis::analysis(&mut c, raw.analysis, &plan_scope);

    if !c.findings.is_empty() {
        return Err(c.findings);
    }
    Ok(Protocol {
        trial_id,
        title,
        version,
        status,
        target_sample_size,
        consent,
        deferred_consent_days,
        data_use_withdrawal,
        masking,
        ethics_approval,
        sites,
        arms,
        fields,
        derived,
        inclusion,
        exclusion,
        randomisation,
        follow_up,
        endpoints: declared.endpoints,
        monitoring,
        analysis,
    })
}

fn sites(c: &mut Checker, raw: Option<Spanned<Vec<RawSite>>>) -> Vec<Site> {
    let Some(raw) = raw else {
        c.error(
            0..0,
            "no sites declared; add a [[sites]] table with a `code` for each site",
        );
        return Vec::new();
    };
    if raw.get_ref().is_empty() {
        c.error(raw.span(), "`sites` is empty; declare at least one site");
    } else if raw.get_ref().len() > limits::MAX_SITES {
        c.error(
            raw.span(),
            format!(
                "a trial may have at most {} sites, found {}",
                limits::MAX_SITES,
                raw.get_ref().len()
            ),
        );
    }
    let mut seen = HashSet::new();
    let mut sites = Vec::new();
    for site in raw.into_inner() {
        let code = site.code.get_ref().clone();
        if !is_site_code(&code) {
            c.error(
                site.code.span(),
                format!("site code `{code}` must be letters, digits, `_` or `-`"),
            );
        } else if !seen.insert(code.clone()) {
            c.error(
                site.code.span(),
                format!("site code `{code}` is declared twice"),
            );
        }
        let name = site.name.map(|n| non_empty(c, n, "site name"));
        sites.push(Site { code, name });
    }
    sites
}

/// The arms, and whether their ratios are all valid (block sizes can only be checked then).
fn arms(
    c: &mut Checker,
    raw: Option<Spanned<Vec<RawArm>>>,
    closed_spans: &mut Vec<Range<usize>>,
) -> (Vec<Arm>, bool) {
    let Some(raw) = raw else {
        c.error(
            0..0,
            "no arms declared; add a [[arms]] table for each of at least 2 arms",
        );
        return (Vec::new(), false);
    };
    let count = raw.get_ref().len();
    let span = raw.span();
    if count < 2 {
        c.error(
            raw.span(),
            format!("a trial needs at least 2 arms, found {count}"),
        );
    } else if count > limits::MAX_ARMS {
        c.error(
            raw.span(),
            format!(
                "a trial may have at most {} arms, found {count}",
                limits::MAX_ARMS
            ),
        );
    }
    let mut valid = true;
    let mut seen = HashSet::new();
    let mut arms = Vec::new();
    for arm in raw.into_inner() {
        let id = arm.id.get_ref().clone();
        if !is_arm_id(&id) {
            c.error(
                arm.id.span(),
                format!("arm id `{id}` must be lower-case letters, digits, `_` or `-`"),
            );
        } else if !seen.insert(id.clone()) {
            c.error(arm.id.span(), format!("arm id `{id}` is declared twice"));
        }
        let label = match arm.label {
            Some(label) => non_empty(c, label, "arm label"),
            None => id.clone(),
        };
        let ratio = match arm.ratio {
            None => 1,
            Some(r) => match u32::try_from(*r.get_ref()) {
                Ok(n) if n > 0 && n <= limits::MAX_RATIO => n,
                Ok(n) if n > limits::MAX_RATIO => {
                    c.error(
                        r.span(),
                        format!(
                            "ratio of arm `{id}` must be at most {}, got {n}",
                            limits::MAX_RATIO
                        ),
                    );
                    valid = false;
                    1
                }
                _ => {
                    c.error(
                        r.span(),
                        format!(
                            "ratio of arm `{id}` must be a positive whole number, got {}",
                            r.get_ref()
                        ),
                    );
                    valid = false;
                    1
                }
            },
        };
        let closed = arm.closed.as_ref().is_some_and(|c| *c.get_ref());
        if let Some(flag) = arm.closed.filter(|c| *c.get_ref()) {
            closed_spans.push(flag.span());
        }
        arms.push(Arm {
            id,
            label,
            ratio,
            closed,
        });
    }
    if !arms.is_empty() && arms.iter().all(|a| a.closed) {
        c.error(
            span,
            "every arm is closed; a trial needs at least one arm open to new patients",
        );
    }
    (arms, valid)
}

fn non_empty(c: &mut Checker, s: Spanned<String>, what: &str) -> String {
    if s.get_ref().trim().is_empty() {
        c.error(s.span(), format!("{what} must not be empty"));
    }
    s.into_inner()
}

fn is_trial_id(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit())
        && chars.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-')
}

fn is_site_code(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
}

fn is_arm_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-')
}

/// Field and derived-field names: `[a-z][a-z0-9_]*`, so they are safe as JSON keys, column
/// names and stratum keys.
fn is_field_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|first| first.is_ascii_lowercase())
        && chars.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
}

/// Render a raw TOML value for a message, on one line.
fn show(value: &toml::Value) -> String {
    match value {
        toml::Value::Table(_) => "a table".to_string(),
        other => {
            let text = other.to_string();
            if text.contains('\n') {
                "a list of tables".to_string()
            } else {
                text
            }
        }
    }
}

/// Kinds whose values are unordered labels (no `lt`/`ge`..., and usable as strata).
fn is_categorical(kind: &FieldKind) -> bool {
    matches!(kind, FieldKind::Category { .. } | FieldKind::Boolean)
}
