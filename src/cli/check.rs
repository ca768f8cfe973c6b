//! `strata check [--repair] [--json] [--content]`: the store's consistency, as a table or JSON.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use strata::store::{Outcome, Problem, Store};

/// `check` arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Remove what is broken (layers, orphan directories and links, leftovers of killed
    /// commands) so that the next pull fetches it again
    #[arg(long)]
    pub(super) repair: bool,
    /// JSON output: a list of {kind, object, detail, affects}; with --repair,
    /// {"found": [... with "repair"], "remaining": [...]}
    #[arg(long)]
    json: bool,
    /// Also read every layer's files and compare them with the content digest recorded when
    /// it was unpacked (slow: reads the whole store)
    #[arg(long)]
    content: bool,
}

/// A problem with what `--repair` did about it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Repaired<'a> {
    #[serde(flatten)]
    problem: &'a Problem,
    repair: Outcome,
}

/// `--repair --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct RepairReport<'a> {
    found: Vec<Repaired<'a>>,
    remaining: &'a [Problem],
}

/// Runs `check`; exit 0 when the store is consistent, 1 when problems remain.
pub fn check(store: &Store, args: &CheckArgs, quiet: bool) -> Result<ExitCode> {
    let found = problems(store, args.content)?;
    let remaining = if args.repair {
        let outcomes = store.repair(&found)?;
        let remaining = problems(store, args.content)?;
        let found: Vec<Repaired<'_>> = found
            .iter()
            .zip(outcomes)
            .map(|(problem, repair)| Repaired { problem, repair })
            .collect();
        if args.json {
            let report = RepairReport {
                found,
                remaining: &remaining,
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_table(found.iter().map(|r| (r.problem, Some(r.repair))));
            if !quiet && !remaining.is_empty() {
                eprintln!("Remaining after the repair:");
                print_table(remaining.iter().map(|p| (p, None)));
            }
        }
        remaining
    } else {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&found)?);
        } else {
            print_table(found.iter().map(|p| (p, None)));
        }
        found
    };
    let failures = remaining.iter().filter(|p| p.kind.is_failure()).count();
    let notices = remaining.len() - failures;
    if !quiet {
        eprintln!("Store kind: {}", store.kind()?);
        let remain = if args.repair { " remain" } else { "" };
        let summary = match failures {
            0 if args.repair => "No problems remain".to_string(),
            0 => "No problems found".to_string(),
            1 => format!("1 problem{}", if args.repair { " remains" } else { "" }),
            n => format!("{n} problems{remain}"),
        };
        match notices {
            0 => eprintln!("{summary}"),
            1 => eprintln!("{summary} (1 notice)"),
            n => eprintln!("{summary} ({n} notices)"),
        }
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The structural problems, then (`content`) the content ones.
fn problems(store: &Store, content: bool) -> Result<Vec<Problem>> {
    let mut problems = store.check()?;
    if content {
        problems.extend(store.check_content()?);
    }
    Ok(problems)
}

fn print_table<'a>(rows: impl Iterator<Item = (&'a Problem, Option<Outcome>)>) {
    let rows: Vec<_> = rows.collect();
    if rows.is_empty() {
        return;
    }
    let with_action = rows.iter().any(|(_, o)| o.is_some());
    let kind_width = rows
        .iter()
        .map(|(p, _)| kind_name(p).len())
        .max()
        .unwrap_or(0);
    let object_width = rows.iter().map(|(p, _)| p.object.len()).max().unwrap_or(0);
    let action = if with_action { "REPAIR   " } else { "" };
    println!(
        "{:<kind_width$}  {:<object_width$}  {action}DETAIL",
        "KIND", "OBJECT"
    );
    for (p, outcome) in rows {
        let action = outcome
            .map(|o| format!("{:<9}", outcome_name(o)))
            .unwrap_or_default();
        let affects = if p.affects.is_empty() {
            String::new()
        } else {
            format!(" (affects {})", p.affects.join(", "))
        };
        println!(
            "{:<kind_width$}  {:<object_width$}  {action}{}{affects}",
            kind_name(p),
            p.object,
            p.detail
        );
    }
}

fn kind_name(p: &Problem) -> String {
    serde_json::to_value(p.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Removed => "removed",
        Outcome::Left => "left",
        Outcome::Busy => "busy",
        Outcome::Passes => "passes",
    }
}
