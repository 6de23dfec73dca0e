//! The scheduler's decisions, with the clock passed in (so tests need not wait): which report runs are due at a
//! moment, given each report's cron expression (croner) and its last run, how missed runs are caught up after a
//! downtime, which period a run reports on, and when to wake next. Running, locking and logging are the caller's.

use chrono::{DateTime, Datelike, Utc};
use croner::Cron;
use std::collections::HashMap;
use std::str::FromStr;

/// What to do about runs missed while the scheduler was not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CatchUp {
    /// Run only the latest missed one.
    #[default]
    Last,
    /// Run every missed one, oldest first.
    All,
    /// Run none; only a run due within the last minute counts.
    Skip,
}

/// A scheduled report.
#[derive(Debug, Clone)]
pub struct Job {
    /// Report name.
    pub report: String,
    /// When it runs.
    pub cron: Cron,
}

impl Job {
    /// A job from a report name and its cron expression (five fields: minute hour day month weekday).
    pub fn new(report: &str, cron: &str) -> Result<Job, croner::errors::CronError> {
        Ok(Job { report: report.to_owned(), cron: Cron::from_str(cron)? })
    }
}

/// A run that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Report name.
    pub report: String,
    /// The moment it was scheduled for.
    pub at: DateTime<Utc>,
    /// The month it reports on: the month before the scheduled moment (`2024-06` for a run on 1 July).
    pub period: String,
}

/// The month a run scheduled at `at` reports on: the month before.
pub fn period_for(at: DateTime<Utc>) -> String {
    let index = at.year() * 12 + at.month0() as i32 - 1;
    format!("{:04}-{:02}", index.div_euclid(12), index.rem_euclid(12) + 1)
}

/// The runs due at `now`: each job's occurrences after its last run (after `since` for a job that never ran) up to
/// `now`, as `catch_up` says; oldest first.
pub fn due(
    jobs: &[Job],
    last_runs: &HashMap<String, DateTime<Utc>>,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    catch_up: CatchUp,
) -> Vec<Due> {
    let mut out = Vec::new();
    for job in jobs {
        let from = last_runs.get(&job.report).copied().unwrap_or(since);
        let missed: Vec<DateTime<Utc>> = job.cron.iter_after(from).take_while(|t| *t <= now).take(1000).collect();
        let chosen: Vec<DateTime<Utc>> = match catch_up {
            CatchUp::All => missed,
            CatchUp::Last => missed.last().copied().into_iter().collect(),
            CatchUp::Skip => {
                missed.last().copied().filter(|t| now - *t <= chrono::Duration::minutes(1)).into_iter().collect()
            }
        };
        out.extend(chosen.into_iter().map(|at| Due { report: job.report.clone(), at, period: period_for(at) }));
    }
    out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.report.cmp(&b.report)));
    out
}

/// When the next run of any job is due after `now`.
pub fn next_wake(jobs: &[Job], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    jobs.iter().filter_map(|j| j.cron.find_next_occurrence(&now, false).ok()).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn monthly() -> Vec<Job> {
        vec![Job::new("newcomers_monthly", "0 6 1 * *").unwrap()]
    }

    #[test]
    fn a_monthly_report_is_due_on_the_first_at_six_for_the_month_before() {
        let none = HashMap::new();
        let since = t("2024-06-15T00:00:00Z");
        assert!(due(&monthly(), &none, since, t("2024-07-01T05:59:00Z"), CatchUp::Last).is_empty());
        let d = due(&monthly(), &none, since, t("2024-07-01T06:00:30Z"), CatchUp::Last);
        assert_eq!(
            d,
            [Due { report: "newcomers_monthly".into(), at: t("2024-07-01T06:00:00Z"), period: "2024-06".into() }]
        );
        // Once it ran, it is not due again until next month.
        let ran = HashMap::from([("newcomers_monthly".to_owned(), t("2024-07-01T06:00:00Z"))]);
        assert!(due(&monthly(), &ran, since, t("2024-07-20T12:00:00Z"), CatchUp::Last).is_empty());
        assert_eq!(next_wake(&monthly(), t("2024-07-20T12:00:00Z")), Some(t("2024-08-01T06:00:00Z")));
        assert_eq!(period_for(t("2025-01-01T06:00:00Z")), "2024-12");
    }

    #[test]
    fn after_downtime_missed_runs_are_caught_up_as_configured() {
        let ran = HashMap::from([("newcomers_monthly".to_owned(), t("2024-07-01T06:00:00Z"))]);
        let since = t("2024-01-01T00:00:00Z");
        let now = t("2024-10-03T09:00:00Z");
        let periods = |c| due(&monthly(), &ran, since, now, c).into_iter().map(|d| d.period).collect::<Vec<_>>();
        assert_eq!(periods(CatchUp::All), ["2024-07", "2024-08", "2024-09"]);
        assert_eq!(periods(CatchUp::Last), ["2024-09"]);
        assert!(periods(CatchUp::Skip).is_empty(), "two days late is not made up");
        assert_eq!(due(&monthly(), &ran, since, t("2024-10-01T06:00:20Z"), CatchUp::Skip).len(), 1, "on time is run");
    }
}
