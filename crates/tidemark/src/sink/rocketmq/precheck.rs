//! The RocketMQ destination's precheck items: name servers, topics, credentials,
//! partition columns; and what does not apply to a message queue.

use super::Rocketmq;
use crate::config::{Phase, Task};
use crate::connect::ServerInfo;
use crate::precheck::Report;
use crate::sink::PlanFacts;
use crate::state::Store;
use crate::transform::mapping::Plan;

pub(super) struct Check<'a> {
    pub(super) kind: &'a Rocketmq,
    pub(super) task: &'a Task,
}

impl crate::sink::Precheck for Check<'_> {
    /// The name servers are reached with the topics, once the plan is known.
    fn connect(&mut self, _: &mut Report) -> bool {
        true
    }

    fn before_plan(&mut self, _: &ServerInfo, _: &mut Report) -> anyhow::Result<PlanFacts> {
        Ok(PlanFacts::default())
    }

    fn check(&mut self, _: Option<&Store>, plan: &Plan, r: &mut Report) -> anyhow::Result<()> {
        let (task, config) = (self.task, &self.kind.config);
        if task.has(Phase::Schema) {
            r.fail(
                "schema-migration",
                "schema migration does not apply to a RocketMQ destination (there are no tables to create; DDL from the binlog is sent as messages)",
                "remove \"schema\" from `migration.types`",
            );
        }
        if task.verification.mode != crate::config::VerificationMode::Off {
            r.fail(
                "verification",
                "verification compares tables on a MySQL destination; a RocketMQ destination has none",
                "set `[verification] mode = \"off\"` (consumers can compare what they rebuild with `tidemark verify` against their own database)",
            );
        }
        let sink = crate::sink::rocketmq::Sink::new(
            config.clone(),
            &task.name,
            std::time::Duration::from_secs(30),
        );
        let problems = sink.check(&plan.tables);
        if problems.is_empty() {
            r.pass(
                "destination-topics",
                format!(
                    "name server {} answers; topic(s) {} exist with writable queues; the broker accepts producer group {:?}",
                    config.name_servers.join(","),
                    config.topics().join(", "),
                    config.producer_group
                ),
            );
        }
        for p in problems {
            r.fail(
                "destination-topics",
                p,
                "fix `[destination]` (name_servers, topic, credentials, topics) or the RocketMQ cluster, then rerun the precheck",
            );
        }
        Ok(())
    }

    fn server(&self) -> Option<ServerInfo> {
        None
    }
}
