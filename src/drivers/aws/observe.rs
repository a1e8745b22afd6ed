//! The aws driver's view of the control plane during a run with faults (the run's
//! control-plane events, `fault::ControlEvent`): read calls only, one round per
//! `observe_every` (one describe call per kind of resource, plus one per watched subnet and
//! per security group a partition revoked from), of what the faults touch — the app's
//! instances (so a replacement the auto scaling group launches shows up), the group's subnets,
//! the subnets' network ACLs, the db writer, each cache node group's primary, the cache ingress
//! rules a partition revoked.
//!
//! It must never write, and never watch what no fault of the run touches.

use std::collections::BTreeSet;

use super::actions::{self, Action};
use super::clients::Clients;
use super::resolve::{self, filter};
use crate::fault::{DriverError, Snapshot};
use crate::target::aws::{AppRole, AwsTarget};

/// What a run's actions touch, deduplicated: what one poll reads.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Watch {
    pub instances: BTreeSet<String>,
    /// The app role (its instances, whatever their state, and its auto scaling group).
    pub app: bool,
    pub asgs: BTreeSet<String>,
    pub subnets: BTreeSet<String>,
    pub clusters: BTreeSet<String>,
    pub rds: BTreeSet<String>,
    pub caches: BTreeSet<String>,
    /// (security group, the rules a partition revoked).
    pub rules: Vec<(String, Vec<resolve::GroupRule>)>,
}

impl Watch {
    pub fn of<'a>(actions: impl IntoIterator<Item = &'a Action>) -> Watch {
        let mut w = Watch::default();
        for a in actions {
            match a {
                Action::StopInstances { instances } | Action::TerminateInstances { instances } => {
                    w.instances.extend(instances.iter().cloned());
                    w.app = true;
                }
                Action::DenyNetwork { subnets, .. } => {
                    w.subnets.extend(subnets.iter().map(|s| s.subnet.clone()));
                }
                Action::KeepAsgOut { asg, .. } => {
                    w.asgs.insert(asg.clone());
                    w.app = true;
                }
                Action::FailoverAurora { cluster, .. } => {
                    w.clusters.insert(cluster.clone());
                }
                Action::FailoverRds { instance, .. } => {
                    w.rds.insert(instance.clone());
                }
                Action::FailoverCache {
                    replication_group, ..
                } => {
                    w.caches.insert(replication_group.clone());
                }
                Action::RevokeIngress { group, rules } => {
                    w.rules.push((group.clone(), rules.clone()));
                }
            }
        }
        w
    }

    /// One round of read calls: the snapshot the timeline diffs.
    pub async fn read(
        &self,
        c: &Clients,
        spec: Option<&AwsTarget>,
    ) -> Result<Snapshot, DriverError> {
        let mut s = Snapshot::new();
        let mut asgs = self.asgs.clone();
        let mut filters = Vec::new();
        match spec.and_then(|t| t.app.as_ref()) {
            Some(AppRole::Asg(name)) if self.app => {
                asgs.insert(name.clone());
                filters.push(filter(
                    "tag:aws:autoscaling:groupName",
                    std::slice::from_ref(name),
                ));
            }
            Some(AppRole::Tags(tags)) if self.app => {
                for (k, v) in tags {
                    filters.push(filter(&format!("tag:{k}"), std::slice::from_ref(v)));
                }
            }
            _ if !self.instances.is_empty() => {
                let ids: Vec<String> = self.instances.iter().cloned().collect();
                filters.push(filter("instance-id", &ids));
            }
            _ => {}
        }
        if !filters.is_empty() {
            for i in resolve::instances(c, filters).await? {
                s.insert(format!("ec2 instance {} ({})", i.id, i.az), i.state);
            }
        }
        for name in &asgs {
            let g = resolve::asg(c, name).await?;
            s.insert(
                format!("autoscaling group {name} subnets"),
                actions::split(&g.vpc_zone_identifier).join(","),
            );
            s.insert(
                format!("autoscaling group {name} instances"),
                g.instances.len().to_string(),
            );
        }
        for subnet in &self.subnets {
            let (_, acl, _) = resolve::acl_of(c, subnet).await?;
            s.insert(format!("ec2 subnet {subnet} network acl"), acl);
        }
        for id in &self.clusters {
            let cl = resolve::aurora(c, id).await?;
            let w = cl
                .writer()
                .map_or("(none)".to_string(), |m| format!("{} ({})", m.id, m.az));
            s.insert(format!("rds cluster {id} writer"), w);
        }
        for id in &self.rds {
            let i = resolve::rds_instance(c, id).await?;
            s.insert(format!("rds instance {id} zone"), i.az);
        }
        for id in &self.caches {
            let g = resolve::replication_group(c, id).await?;
            for ng in &g.node_groups {
                let p = ng
                    .primary()
                    .map_or("(none)".to_string(), |m| format!("{} ({})", m.0, m.2));
                s.insert(format!("elasticache {id} node group {} primary", ng.id), p);
            }
        }
        for (group, rules) in &self.rules {
            let now = actions::rules_now(c, group, rules).await?;
            for r in rules {
                let admitted = now.iter().any(|n| actions::same_rule(n, r));
                s.insert(
                    format!(
                        "ec2 security group {group} ingress {}",
                        actions::rule_shown(r)
                    ),
                    if admitted { "admitted" } else { "revoked" }.into(),
                );
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actions::SubnetAcl;

    #[test]
    fn a_watch_reads_what_the_actions_touch_once_each() {
        let w = Watch::of(&[
            Action::StopInstances {
                instances: vec!["i-1".into(), "i-2".into()],
            },
            Action::DenyNetwork {
                vpc: "vpc-1".into(),
                subnets: vec![SubnetAcl {
                    subnet: "subnet-a".into(),
                    acl: "acl-0".into(),
                }],
            },
            Action::TerminateInstances {
                instances: vec!["i-2".into()],
            },
            Action::FailoverAurora {
                cluster: "notes".into(),
                writer: "w".into(),
                target: None,
            },
        ]);
        assert_eq!(w.instances.len(), 2);
        assert!(w.app);
        assert_eq!(w.subnets.len(), 1);
        assert_eq!(w.clusters.len(), 1);
        assert!(w.caches.is_empty() && w.rules.is_empty() && w.asgs.is_empty());
        assert_eq!(Watch::of(&[]), Watch::default());
    }
}
