//! The aws driver's write side: one [`Action`] per thing a fault does (stop these instances,
//! swap these subnets to a deny-all network ACL, fail this cluster over…), fully resolved at
//! plan time. An action knows the calls it makes (what `chaos plan` prints), how to do them,
//! how to see they took effect, and how to undo them. The undo of every action needs only the
//! action itself (ids resolved at plan time, and tags this driver writes on what it creates or
//! changes), so a fault's undo data is its list of actions and a rollback in another process,
//! or after a half-done inject, can finish the job. Every revert is idempotent: it describes
//! first and changes only what is still changed (instances: only those tagged as stopped by
//! this fault; an auto scaling group's subnets are set back to what the plan saw).

use serde::{Deserialize, Serialize};

use aws_sdk_ec2::types::{
    IpPermission, ResourceType, Tag as Ec2Tag, TagSpecification, UserIdGroupPair,
};

use super::clients::{api_err, code_of, Clients};
use super::resolve::{self, filter, GroupRule};
use crate::fault::{Call, DriverError};

/// Tags the driver writes: on what it creates (a network ACL) and what it changes (stopped
/// instances, an auto scaling group's subnets), so `chaos rollback --sweep` finds leftovers
/// even without the run's journal.
pub const RUN_TAG: &str = "chaos:run-id";
pub const FAULT_TAG: &str = "chaos:fault";
pub const STOPPED_TAG: &str = "chaos:stopped-by";
pub const ASG_TAG: &str = "chaos:asg-subnets";
/// `chaos:restore:<subnet-id>` = the network ACL the subnet had before (on the deny-all ACL).
pub const RESTORE_PREFIX: &str = "chaos:restore:";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetAcl {
    pub subnet: String,
    /// The network ACL the subnet was associated with before the fault.
    pub acl: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Stop running instances (started on revert).
    StopInstances { instances: Vec<String> },
    /// Terminate instances (the auto scaling group replaces them: nothing to revert).
    TerminateInstances { instances: Vec<String> },
    /// Associate a zone's subnets in one VPC with a deny-all network ACL made for this fault.
    DenyNetwork {
        vpc: String,
        subnets: Vec<SubnetAcl>,
    },
    /// Keep an auto scaling group from launching in a zone: its subnets there removed from
    /// the group's `VPCZoneIdentifier`.
    KeepAsgOut {
        asg: String,
        original: String,
        without: String,
    },
    /// Aurora `FailoverDBCluster`, to `target` if given.
    FailoverAurora {
        cluster: String,
        writer: String,
        target: Option<String>,
    },
    /// RDS Multi-AZ `RebootDBInstance` with `ForceFailover`.
    FailoverRds { instance: String, az: String },
    /// ElastiCache `TestFailover` of one node group.
    FailoverCache {
        replication_group: String,
        node_group: String,
        primary: String,
    },
    /// Revoke the ingress rules of `group` that admit the app's security groups.
    RevokeIngress {
        group: String,
        rules: Vec<GroupRule>,
    },
}

fn ids(v: &[String]) -> String {
    v.join(",")
}

fn call(service: &str, op: &str, resource: &str, args: &[(&str, String)]) -> Call {
    Call {
        service: service.into(),
        operation: op.into(),
        resource: resource.into(),
        args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

pub(super) fn rule_shown(r: &GroupRule) -> String {
    let ports = match (r.from_port, r.to_port) {
        (Some(a), Some(b)) if a == b => format!("{a}"),
        (Some(a), Some(b)) => format!("{a}-{b}"),
        _ => "all".into(),
    };
    format!("{}/{ports} from {}", r.protocol, r.source_group)
}

impl Action {
    /// The calls the inject makes, as `chaos plan` prints them.
    pub fn inject_calls(&self, run_id: &str, fault: &str) -> Vec<Call> {
        match self {
            Action::StopInstances { instances } => vec![
                call(
                    "ec2",
                    "CreateTags",
                    &ids(instances),
                    &[(STOPPED_TAG, stopped_by(run_id, fault))],
                ),
                call("ec2", "StopInstances", &ids(instances), &[]),
            ],
            Action::TerminateInstances { instances } => {
                vec![call("ec2", "TerminateInstances", &ids(instances), &[])]
            }
            Action::DenyNetwork { vpc, subnets } => {
                let mut v = vec![call(
                    "ec2",
                    "CreateNetworkAcl",
                    vpc,
                    &[
                        ("rules", "deny-all".into()),
                        (RUN_TAG, run_id.into()),
                        (FAULT_TAG, fault.into()),
                    ],
                )];
                for s in subnets {
                    v.push(call(
                        "ec2",
                        "ReplaceNetworkAclAssociation",
                        &s.subnet,
                        &[("acl", "(the deny-all ACL)".into()), ("was", s.acl.clone())],
                    ));
                }
                v
            }
            Action::KeepAsgOut { asg, without, .. } => vec![
                call(
                    "autoscaling",
                    "CreateOrUpdateTags",
                    asg,
                    &[(ASG_TAG, "(the original)".into())],
                ),
                call(
                    "autoscaling",
                    "UpdateAutoScalingGroup",
                    asg,
                    &[("VPCZoneIdentifier", without.clone())],
                ),
            ],
            Action::FailoverAurora {
                cluster, target, ..
            } => {
                let mut args = Vec::new();
                if let Some(t) = target {
                    args.push(("TargetDBInstanceIdentifier", t.clone()));
                }
                vec![call("rds", "FailoverDBCluster", cluster, &args)]
            }
            Action::FailoverRds { instance, .. } => vec![call(
                "rds",
                "RebootDBInstance",
                instance,
                &[("ForceFailover", "true".into())],
            )],
            Action::FailoverCache {
                replication_group,
                node_group,
                ..
            } => vec![call(
                "elasticache",
                "TestFailover",
                replication_group,
                &[("NodeGroupId", node_group.clone())],
            )],
            Action::RevokeIngress { group, rules } => vec![call(
                "ec2",
                "RevokeSecurityGroupIngress",
                group,
                &[(
                    "rules",
                    rules
                        .iter()
                        .map(|r| format!("{} ({})", r.rule_id, rule_shown(r)))
                        .collect::<Vec<_>>()
                        .join("; "),
                )],
            )],
        }
    }

    /// The calls a revert makes (empty: it stays done).
    pub fn revert_calls(&self, run_id: &str, fault: &str) -> Vec<Call> {
        match self {
            Action::StopInstances { instances } => vec![
                call(
                    "ec2",
                    "StartInstances",
                    &ids(instances),
                    &[(STOPPED_TAG, stopped_by(run_id, fault))],
                ),
                call(
                    "ec2",
                    "DeleteTags",
                    &ids(instances),
                    &[(STOPPED_TAG, stopped_by(run_id, fault))],
                ),
            ],
            Action::DenyNetwork { subnets, .. } => {
                let mut v: Vec<Call> = subnets
                    .iter()
                    .map(|s| {
                        call(
                            "ec2",
                            "ReplaceNetworkAclAssociation",
                            &s.subnet,
                            &[("acl", s.acl.clone())],
                        )
                    })
                    .collect();
                v.push(call(
                    "ec2",
                    "DeleteNetworkAcl",
                    "(the deny-all ACL)",
                    &[(RUN_TAG, run_id.into())],
                ));
                v
            }
            Action::KeepAsgOut { asg, original, .. } => vec![
                call(
                    "autoscaling",
                    "UpdateAutoScalingGroup",
                    asg,
                    &[("VPCZoneIdentifier", original.clone())],
                ),
                call(
                    "autoscaling",
                    "DeleteTags",
                    asg,
                    &[(ASG_TAG, String::new())],
                ),
            ],
            Action::RevokeIngress { group, rules } => vec![call(
                "ec2",
                "AuthorizeSecurityGroupIngress",
                group,
                &[(
                    "rules",
                    rules.iter().map(rule_shown).collect::<Vec<_>>().join("; "),
                )],
            )],
            Action::TerminateInstances { .. }
            | Action::FailoverAurora { .. }
            | Action::FailoverRds { .. }
            | Action::FailoverCache { .. } => Vec::new(),
        }
    }

    pub async fn inject(&self, c: &Clients, run_id: &str, fault: &str) -> Result<(), DriverError> {
        match self {
            Action::StopInstances { instances } => {
                c.ec2
                    .create_tags()
                    .set_resources(Some(instances.clone()))
                    .tags(ec2_tag(STOPPED_TAG, &stopped_by(run_id, fault)))
                    .send()
                    .await
                    .map_err(|e| api_err("ec2:CreateTags", &ids(instances), e))?;
                c.ec2
                    .stop_instances()
                    .set_instance_ids(Some(instances.clone()))
                    .send()
                    .await
                    .map_err(|e| api_err("ec2:StopInstances", &ids(instances), e))?;
            }
            Action::TerminateInstances { instances } => {
                c.ec2
                    .terminate_instances()
                    .set_instance_ids(Some(instances.clone()))
                    .send()
                    .await
                    .map_err(|e| api_err("ec2:TerminateInstances", &ids(instances), e))?;
            }
            Action::DenyNetwork { vpc, subnets } => {
                // A new custom network ACL denies everything until rules are added: none are.
                // Its tags say whose it is and what each subnet had, for a sweep.
                let mut tags = vec![ec2_tag(RUN_TAG, run_id), ec2_tag(FAULT_TAG, fault)];
                for s in subnets {
                    tags.push(ec2_tag(&format!("{RESTORE_PREFIX}{}", s.subnet), &s.acl));
                }
                let acl = c
                    .ec2
                    .create_network_acl()
                    .vpc_id(vpc)
                    .tag_specifications(
                        TagSpecification::builder()
                            .resource_type(ResourceType::NetworkAcl)
                            .set_tags(Some(tags))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| api_err("ec2:CreateNetworkAcl", vpc, e))?;
                let acl = acl
                    .network_acl()
                    .and_then(|a| a.network_acl_id())
                    .ok_or_else(|| {
                        DriverError::Permanent(format!(
                            "ec2:CreateNetworkAcl {vpc}: the answer named no ACL"
                        ))
                    })?
                    .to_string();
                for s in subnets {
                    associate(c, &s.subnet, &acl).await?;
                }
            }
            Action::KeepAsgOut {
                asg,
                original,
                without,
            } => {
                c.asg
                    .create_or_update_tags()
                    .tags(
                        aws_sdk_autoscaling::types::Tag::builder()
                            .resource_id(asg)
                            .resource_type("auto-scaling-group")
                            .key(ASG_TAG)
                            .value(original)
                            .propagate_at_launch(false)
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| api_err("autoscaling:CreateOrUpdateTags", asg, e))?;
                set_asg_subnets(c, asg, without).await?;
            }
            Action::FailoverAurora {
                cluster, target, ..
            } => {
                c.rds
                    .failover_db_cluster()
                    .db_cluster_identifier(cluster)
                    .set_target_db_instance_identifier(target.clone())
                    .send()
                    .await
                    .map_err(|e| api_err("rds:FailoverDBCluster", cluster, e))?;
            }
            Action::FailoverRds { instance, .. } => {
                c.rds
                    .reboot_db_instance()
                    .db_instance_identifier(instance)
                    .force_failover(true)
                    .send()
                    .await
                    .map_err(|e| api_err("rds:RebootDBInstance", instance, e))?;
            }
            Action::FailoverCache {
                replication_group,
                node_group,
                ..
            } => {
                c.cache
                    .test_failover()
                    .replication_group_id(replication_group)
                    .node_group_id(node_group)
                    .send()
                    .await
                    .map_err(|e| api_err("elasticache:TestFailover", replication_group, e))?;
            }
            Action::RevokeIngress { group, rules } => {
                c.ec2
                    .revoke_security_group_ingress()
                    .group_id(group)
                    .set_security_group_rule_ids(Some(
                        rules.iter().map(|r| r.rule_id.clone()).collect(),
                    ))
                    .send()
                    .await
                    .map_err(|e| api_err("ec2:RevokeSecurityGroupIngress", group, e))?;
            }
        }
        Ok(())
    }

    /// `Ok` once describe calls show the effect; retryable while they do not yet.
    pub async fn confirm(&self, c: &Clients, run_id: &str) -> Result<(), DriverError> {
        let not_yet = |m: String| DriverError::retryable(m);
        match self {
            Action::StopInstances { instances } | Action::TerminateInstances { instances } => {
                let want: &[&str] = if matches!(self, Action::StopInstances { .. }) {
                    &["stopping", "stopped"]
                } else {
                    &["shutting-down", "terminated"]
                };
                let found = resolve::instances(c, vec![filter("instance-id", instances)]).await?;
                let off: Vec<&str> = found
                    .iter()
                    .filter(|i| !want.contains(&i.state.as_str()))
                    .map(|i| i.id.as_str())
                    .collect();
                if !off.is_empty() {
                    return Err(not_yet(format!(
                        "instances not yet {}: {}",
                        want.join(" or "),
                        off.join(", ")
                    )));
                }
            }
            Action::DenyNetwork { subnets, .. } => {
                for s in subnets {
                    let (_, acl, tags) = resolve::acl_of(c, &s.subnet).await?;
                    if tags.get(RUN_TAG).map(String::as_str) != Some(run_id) {
                        return Err(not_yet(format!(
                            "subnet {} is still on network ACL {acl}",
                            s.subnet
                        )));
                    }
                }
            }
            Action::KeepAsgOut { asg, without, .. } => {
                let g = resolve::asg(c, asg).await?;
                if split(&g.vpc_zone_identifier) != split(without) {
                    return Err(not_yet(format!(
                        "auto scaling group {asg} still launches in subnets {}",
                        g.vpc_zone_identifier
                    )));
                }
            }
            Action::FailoverAurora {
                cluster, writer, ..
            } => {
                let cl = resolve::aurora(c, cluster).await?;
                match cl.writer() {
                    Some(w) if w.id != *writer => {}
                    _ => {
                        return Err(not_yet(format!(
                            "the writer of {cluster} is still {writer}"
                        )))
                    }
                }
            }
            Action::FailoverRds { instance, az } => {
                let i = resolve::rds_instance(c, instance).await?;
                if i.az == *az {
                    return Err(not_yet(format!(
                        "{instance} still runs its primary in {az}"
                    )));
                }
            }
            Action::FailoverCache {
                replication_group,
                node_group,
                primary,
            } => {
                let g = resolve::replication_group(c, replication_group).await?;
                let now = g
                    .node_groups
                    .iter()
                    .find(|n| n.id == *node_group)
                    .and_then(|n| n.primary())
                    .map(|p| p.0.clone());
                if now.as_deref() == Some(primary.as_str()) || now.is_none() {
                    return Err(not_yet(format!(
                        "the primary of {replication_group} node group {node_group} is still {primary}"
                    )));
                }
            }
            Action::RevokeIngress { group, rules } => {
                let now = rules_now(c, group, rules).await?;
                let left: Vec<&GroupRule> = now
                    .iter()
                    .filter(|r| rules.iter().any(|x| same_rule(r, x)))
                    .collect();
                if !left.is_empty() {
                    return Err(not_yet(format!(
                        "{group} still admits {}",
                        left.iter()
                            .map(|r| rule_shown(r))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        Ok(())
    }

    /// Undo what [`Action::inject`] did, as far as it went; harmless when it did nothing or
    /// was already undone.
    pub async fn revert(&self, c: &Clients, run_id: &str, fault: &str) -> Result<(), DriverError> {
        match self {
            Action::StopInstances { instances } => {
                // Only what this fault stopped (tagged before the stop: an instance stopped by
                // someone else, or never reached by a half-done inject, is left alone), never
                // one the ASG has since replaced.
                let mine = stopped_by(run_id, fault);
                let found: Vec<resolve::Instance> =
                    resolve::instances(c, vec![filter("instance-id", instances)])
                        .await?
                        .into_iter()
                        .filter(|i| i.tags.get(STOPPED_TAG) == Some(&mine))
                        .collect();
                let stopping: Vec<&str> = found
                    .iter()
                    .filter(|i| matches!(i.state.as_str(), "stopping" | "shutting-down"))
                    .map(|i| i.id.as_str())
                    .collect();
                if !stopping.is_empty() {
                    // StartInstances refuses an instance still stopping: ask again shortly.
                    return Err(DriverError::retryable(format!(
                        "instances still stopping: {}",
                        stopping.join(", ")
                    )));
                }
                let stopped: Vec<String> = found
                    .iter()
                    .filter(|i| i.state == "stopped")
                    .map(|i| i.id.clone())
                    .collect();
                if !stopped.is_empty() {
                    c.ec2
                        .start_instances()
                        .set_instance_ids(Some(stopped.clone()))
                        .send()
                        .await
                        .map_err(|e| api_err("ec2:StartInstances", &ids(&stopped), e))?;
                }
                let live: Vec<String> = found
                    .iter()
                    .filter(|i| i.state != "terminated")
                    .map(|i| i.id.clone())
                    .collect();
                if !live.is_empty() {
                    c.ec2
                        .delete_tags()
                        .set_resources(Some(live.clone()))
                        .tags(Ec2Tag::builder().key(STOPPED_TAG).build())
                        .send()
                        .await
                        .map_err(|e| api_err("ec2:DeleteTags", &ids(&live), e))?;
                }
            }
            Action::DenyNetwork { vpc, subnets } => {
                // Every subnet is tried, whatever one of them answers.
                let mut failed = Vec::new();
                for s in subnets {
                    let r = match resolve::acl_of(c, &s.subnet).await {
                        // Associations get new ids on every replace: described just now.
                        Ok((_, acl, _)) if acl != s.acl => associate(c, &s.subnet, &s.acl).await,
                        Ok(_) => Ok(()),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = r {
                        failed.push(e);
                    }
                }
                if let Some(e) = failed.into_iter().next() {
                    return Err(e);
                }
                delete_acls(c, run_id, Some(fault), Some(vpc)).await?;
            }
            Action::KeepAsgOut { asg, original, .. } => {
                let g = resolve::asg(c, asg).await?;
                if split(&g.vpc_zone_identifier) != split(original) {
                    set_asg_subnets(c, asg, original).await?;
                }
                if g.tags.contains_key(ASG_TAG) {
                    delete_asg_tag(c, asg).await?;
                }
            }
            Action::RevokeIngress { group, rules } => {
                let now = rules_now(c, group, rules).await?;
                for r in rules
                    .iter()
                    .filter(|r| !now.iter().any(|x| same_rule(x, r)))
                {
                    authorize(c, group, r).await?;
                }
            }
            Action::TerminateInstances { .. }
            | Action::FailoverAurora { .. }
            | Action::FailoverRds { .. }
            | Action::FailoverCache { .. } => {}
        }
        Ok(())
    }
}

/// The `chaos:stopped-by` value of one fault's instances: `<run id>/<fault>`.
pub fn stopped_by(run_id: &str, fault: &str) -> String {
    format!("{run_id}/{fault}")
}

fn ec2_tag(k: &str, v: &str) -> Ec2Tag {
    Ec2Tag::builder().key(k).value(v).build()
}

/// The subnets of a `VPCZoneIdentifier`, in a comparable order.
pub fn split(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect();
    v.sort();
    v
}

/// The ingress rules `group` has now from the sources of `rules`.
pub(super) async fn rules_now(
    c: &Clients,
    group: &str,
    rules: &[GroupRule],
) -> Result<Vec<GroupRule>, DriverError> {
    let sources: Vec<String> = rules.iter().map(|r| r.source_group.clone()).collect();
    let g = resolve::groups(c, &[group.to_string()]).await?;
    match g.first() {
        Some(g) => resolve::group_rules(c, g, &sources).await,
        None => Ok(Vec::new()),
    }
}

/// Two rules admitting the same traffic (a re-authorized rule has a new id).
pub(super) fn same_rule(a: &GroupRule, b: &GroupRule) -> bool {
    a.protocol == b.protocol
        && a.from_port == b.from_port
        && a.to_port == b.to_port
        && a.source_group == b.source_group
}

/// Associate `subnet` with `acl`, through the association it has now.
pub async fn associate(c: &Clients, subnet: &str, acl: &str) -> Result<(), DriverError> {
    let (assoc, _, _) = resolve::acl_of(c, subnet).await?;
    c.ec2
        .replace_network_acl_association()
        .association_id(&assoc)
        .network_acl_id(acl)
        .send()
        .await
        .map_err(|e| api_err("ec2:ReplaceNetworkAclAssociation", subnet, e))?;
    Ok(())
}

/// Delete the network ACLs this run created (for `fault` and in `vpc`, if given) that no
/// subnet uses any more.
pub async fn delete_acls(
    c: &Clients,
    run_id: &str,
    fault: Option<&str>,
    vpc: Option<&str>,
) -> Result<(), DriverError> {
    let mut left = Vec::new();
    for (acl, subnets, tags) in resolve::acls_tagged(c, RUN_TAG, Some(run_id)).await? {
        if fault.is_some_and(|f| tags.get(FAULT_TAG).map(String::as_str) != Some(f)) {
            continue;
        }
        if let Some(v) = vpc {
            let r = c
                .ec2
                .describe_network_acls()
                .network_acl_ids(&acl)
                .send()
                .await
                .map_err(|e| api_err("ec2:DescribeNetworkAcls", &acl, e))?;
            if r.network_acls().iter().any(|a| a.vpc_id() != Some(v)) {
                continue;
            }
        }
        if !subnets.is_empty() {
            left.push(format!("{acl} (still on {})", subnets.join(", ")));
            continue;
        }
        match c.ec2.delete_network_acl().network_acl_id(&acl).send().await {
            Ok(_) => {}
            Err(e) if code_of(&e) == Some("InvalidNetworkAclID.NotFound") => {}
            Err(e) => return Err(api_err("ec2:DeleteNetworkAcl", &acl, e)),
        }
    }
    if !left.is_empty() {
        return Err(DriverError::retryable(format!(
            "deny-all network ACLs still in use: {}",
            left.join(", ")
        )));
    }
    Ok(())
}

async fn set_asg_subnets(c: &Clients, asg: &str, subnets: &str) -> Result<(), DriverError> {
    c.asg
        .update_auto_scaling_group()
        .auto_scaling_group_name(asg)
        .vpc_zone_identifier(subnets)
        .send()
        .await
        .map_err(|e| api_err("autoscaling:UpdateAutoScalingGroup", asg, e))?;
    Ok(())
}

pub async fn delete_asg_tag(c: &Clients, asg: &str) -> Result<(), DriverError> {
    c.asg
        .delete_tags()
        .tags(
            aws_sdk_autoscaling::types::Tag::builder()
                .resource_id(asg)
                .resource_type("auto-scaling-group")
                .key(ASG_TAG)
                .build(),
        )
        .send()
        .await
        .map_err(|e| api_err("autoscaling:DeleteTags", asg, e))?;
    Ok(())
}

async fn authorize(c: &Clients, group: &str, r: &GroupRule) -> Result<(), DriverError> {
    let pair = UserIdGroupPair::builder()
        .group_id(&r.source_group)
        .set_user_id(r.source_user.clone())
        .set_description(r.description.clone())
        .build();
    let perm = IpPermission::builder()
        .ip_protocol(&r.protocol)
        .set_from_port(r.from_port)
        .set_to_port(r.to_port)
        .user_id_group_pairs(pair)
        .build();
    match c
        .ec2
        .authorize_security_group_ingress()
        .group_id(group)
        .ip_permissions(perm)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if code_of(&e) == Some("InvalidPermission.Duplicate") => Ok(()),
        Err(e) => Err(api_err("ec2:AuthorizeSecurityGroupIngress", group, e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// moto cannot run these two (no TestFailover; a forced-failover reboot moves nothing):
    /// the calls they make are checked here instead.
    #[test]
    fn failovers_moto_cannot_do_make_the_calls_aws_documents() {
        let rds = Action::FailoverRds {
            instance: "db-1".into(),
            az: "eu-west-1a".into(),
        };
        let c = rds.inject_calls("run", "f");
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].to_string(),
            "rds:RebootDBInstance db-1 ForceFailover=true"
        );
        assert!(rds.revert_calls("run", "f").is_empty());
        let cache = Action::FailoverCache {
            replication_group: "rg".into(),
            node_group: "0001".into(),
            primary: "rg-001".into(),
        };
        assert_eq!(
            cache.inject_calls("run", "f")[0].to_string(),
            "elasticache:TestFailover rg NodeGroupId=0001"
        );
        // The undo data reads back as written (a rollback in another process uses it).
        let v = serde_json::to_value(&cache).unwrap();
        assert_eq!(v["action"], "failover-cache");
        assert_eq!(serde_json::from_value::<Action>(v).unwrap(), cache);
    }

    #[test]
    fn subnet_lists_compare_in_any_order() {
        assert_eq!(split("subnet-b, subnet-a,"), split("subnet-a,subnet-b"));
    }
}
