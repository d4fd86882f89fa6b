//! `eda-daemon replay`: re-runs a window of a topic (see [`eda_actors::replay`]).

use crate::cli::{ReplayArgs, ReplayMode};
use chrono::Utc;
use eda_actors::pipeline::Observability;
use eda_actors::replay::{self, ReplayError, ReplayFrom, ReplayTo};
use std::process::ExitCode;

/// Plans the replay, prints the plan, then carries it out unless it is a dry run. Exit 0 when
/// done (or planned, for a dry run), 2 for a request that does not fit the topic or the
/// configuration, 1 when the group has active members or a broker or sink failed.
pub fn replay(request: ReplayArgs) -> ExitCode {
    let (config, runtime) = match super::start(&request.config) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let from = match request.from_time {
        Some(time) => ReplayFrom::Time(time.with_timezone(&Utc)),
        None => ReplayFrom::Offsets(request.from_offset.iter().copied().collect()),
    };
    let to = match (request.to_time, request.to_offset.is_empty()) {
        (Some(time), _) => ReplayTo::Time(time.with_timezone(&Utc)),
        (None, false) => ReplayTo::Offsets(request.to_offset.iter().copied().collect()),
        (None, true) => ReplayTo::End,
    };
    let plan = match replay::plan(
        &config.kafka,
        &config.kafka.group_id,
        &request.topic,
        &from,
        &to,
    ) {
        Ok(plan) => plan,
        Err(err) => return failed("the replay could not be planned", &err),
    };
    println!("{plan}");
    if request.dry_run {
        println!("dry run: nothing changed");
        return ExitCode::SUCCESS;
    }
    match request.mode {
        ReplayMode::MoveGroup => match replay::move_group(&config.kafka, &plan) {
            Ok(()) => {
                println!(
                    "moved consumer group {} to the window's start on {} partition(s): start the \
                     daemon to replay {} message(s)",
                    plan.group,
                    plan.partitions.len(),
                    plan.messages()
                );
                ExitCode::SUCCESS
            }
            Err(err) => failed("the group's offsets were not moved", &err),
        },
        ReplayMode::OneOff => {
            let group = request.replay_group.unwrap_or_else(|| {
                format!(
                    "{}-replay-{}",
                    config.kafka.group_id,
                    Utc::now().timestamp()
                )
            });
            println!("one-off pass under consumer group {group} ...");
            let obs = Observability::new(&config);
            let passed = runtime.block_on(replay::run_once(&config, &plan, &group, obs));
            // The pass's spans, if exported, go out while the runtime is there.
            crate::logging::flush();
            match passed {
                Ok(report) => {
                    println!(
                        "one-off pass done: {} message(s) replayed under group {}",
                        report.messages, report.group
                    );
                    ExitCode::SUCCESS
                }
                Err(err) => failed("the one-off pass stopped", &err),
            }
        }
    }
}

/// Prints why, and picks the exit code: 2 for a request that does not fit, 1 otherwise.
fn failed(what: &str, err: &ReplayError) -> ExitCode {
    eprintln!("error: {what}: {err}");
    match err {
        ReplayError::Invalid(_) | ReplayError::UnknownTopic(_) => {
            ExitCode::from(super::EXIT_BAD_INPUT)
        }
        _ => ExitCode::FAILURE,
    }
}
