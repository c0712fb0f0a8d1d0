//! What one row of an evaluation's results measures: the hand-off from the
//! evaluation nodes (exec) to the tables, figures and TensorBoard (report).
//! Its name in `results.csv`, `units.csv`, `evals.csv` and `per_prompt.csv`
//! is the snake_case spelling of the variant (serde writes it), so the files
//! read as before, and a report that meets a metric it does not know fails to
//! compile rather than fall back to a silent default.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultMetric {
    /// KL(π ‖ π_ref) of the policy's own samples (`kl(...)`).
    Kl,
    /// The judge's win rate of the policy against the baseline (`winrate(...)`).
    Winrate,
    /// A model's accuracy at telling the chosen response from the rejected one (`classifier(...)`).
    Accuracy,
    /// The policy's log-ratio to the reference on the chosen responses (`winner_logprob(...)`).
    WinnerLogprob,
    /// The policy, read as a classifier of its own samples, against a judge (`self_classifier(...)`).
    SelfAccuracy,
    /// The world's own reward of the policy's samples (`oracle(...)`, its headline).
    OracleReward,
    /// The share of the policy's samples that end with EOS before the last slot.
    StopsOnItsOwn,
    /// The world's reward of its worst scripted behaviour on the same prompts: the scale's floor.
    OracleRewardWorstBehaviour,
    /// The world's reward of its best scripted behaviour on the same prompts: the scale's ceiling.
    OracleRewardBestBehaviour,
}

impl ResultMetric {
    pub const ALL: [ResultMetric; 9] = [
        ResultMetric::Kl,
        ResultMetric::Winrate,
        ResultMetric::Accuracy,
        ResultMetric::WinnerLogprob,
        ResultMetric::SelfAccuracy,
        ResultMetric::OracleReward,
        ResultMetric::StopsOnItsOwn,
        ResultMetric::OracleRewardWorstBehaviour,
        ResultMetric::OracleRewardBestBehaviour,
    ];

    /// The name the result files use.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultMetric::Kl => "kl",
            ResultMetric::Winrate => "winrate",
            ResultMetric::Accuracy => "accuracy",
            ResultMetric::WinnerLogprob => "winner_logprob",
            ResultMetric::SelfAccuracy => "self_accuracy",
            ResultMetric::OracleReward => "oracle_reward",
            ResultMetric::StopsOnItsOwn => "stops_on_its_own",
            ResultMetric::OracleRewardWorstBehaviour => "oracle_reward_worst_behaviour",
            ResultMetric::OracleRewardBestBehaviour => "oracle_reward_best_behaviour",
        }
    }

    /// The axis label a figure of this metric carries.
    pub fn label(self) -> &'static str {
        match self {
            ResultMetric::Kl => "KL(πθ ‖ πsft)",
            ResultMetric::Winrate => "win rate against the baseline",
            ResultMetric::Accuracy => "classification accuracy",
            ResultMetric::WinnerLogprob => "log πθ(y_w) − log πsft(y_w)",
            ResultMetric::SelfAccuracy => "self-classification accuracy",
            ResultMetric::OracleReward => "oracle reward r*(x, y)",
            ResultMetric::StopsOnItsOwn => "share of samples that stop on their own",
            ResultMetric::OracleRewardWorstBehaviour => "oracle reward of the worst behaviour",
            ResultMetric::OracleRewardBestBehaviour => "oracle reward of the best behaviour",
        }
    }
}

impl std::fmt::Display for ResultMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ResultMetric;

    /// The files spell each metric as they always have: serde's name is
    /// `as_str`, and each name reads back as its metric.
    #[test]
    fn each_metric_is_written_and_read_under_its_file_name() {
        for m in ResultMetric::ALL {
            let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(vec![]);
            w.serialize((m, 1)).unwrap();
            let bytes = w.into_inner().unwrap();
            assert_eq!(String::from_utf8(bytes.clone()).unwrap(), format!("{},1\n", m.as_str()));
            let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(bytes.as_slice());
            let back: (ResultMetric, i32) = r.deserialize().next().unwrap().unwrap();
            assert_eq!(back.0, m);
        }
        let names: std::collections::BTreeSet<&str> = ResultMetric::ALL.iter().map(|m| m.as_str()).collect();
        assert_eq!(names.len(), ResultMetric::ALL.len(), "two metrics share a name");
    }

    /// A name no version wrote is refused, not read as some metric.
    #[test]
    fn an_unknown_name_is_refused() {
        let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader("win_rate,1\n".as_bytes());
        let back: Option<Result<(ResultMetric, i32), _>> = r.deserialize().next();
        assert!(back.unwrap().is_err());
    }
}
