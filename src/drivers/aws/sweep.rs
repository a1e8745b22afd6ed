//! `chaos rollback --target <aws> --sweep`: undo what any chaos run left behind on the
//! account when its run directory (and so its journal) is gone, by the tags the driver writes
//! on everything it creates or changes. Deny-all network ACLs: each subnet on one goes back
//! to the ACL its `chaos:restore:<subnet>` tag names (the VPC's default ACL if the tag is
//! missing), then the ACL is deleted. Instances tagged `chaos:stopped-by`: started, tag
//! removed. The app's auto scaling group tagged `chaos:asg-subnets`: its subnets restored.
//!
//! Revoked security-group rules leave nothing to find by tag: only the journal restores them
//! (`chaos rollback <run-dir>`). Running a sweep twice is harmless.

use super::actions::{self, ASG_TAG, RESTORE_PREFIX, RUN_TAG, STOPPED_TAG};
use super::clients::api_err;
use super::resolve::{self, filter};
use super::AwsDriver;
use crate::fault::DriverError;
use crate::target::aws::{AppRole, AwsTarget};

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The account could not be reached or is not the target's: nothing was done.
    #[error(transparent)]
    Connect(#[from] super::AwsError),
    #[error(transparent)]
    Call(#[from] DriverError),
}

/// What a sweep found and did, one line each.
pub async fn sweep(spec: &AwsTarget) -> Result<Vec<String>, SweepError> {
    let d = AwsDriver::connect(spec).await?;
    let c = d.clients().await;
    let mut done = Vec::new();
    for (acl, subnets, tags) in resolve::acls_tagged(c, RUN_TAG, None).await? {
        let run = tags.get(RUN_TAG).cloned().unwrap_or_default();
        for s in &subnets {
            let back = match tags.get(&format!("{RESTORE_PREFIX}{s}")) {
                Some(a) => a.clone(),
                None => default_acl(c, &acl).await?,
            };
            actions::associate(c, s, &back).await?;
            done.push(format!(
                "subnet {s}: back on network ACL {back} (from {acl} of {run})"
            ));
        }
        c.ec2
            .delete_network_acl()
            .network_acl_id(&acl)
            .send()
            .await
            .map_err(|e| api_err("ec2:DeleteNetworkAcl", &acl, e))?;
        done.push(format!("network ACL {acl} of {run}: deleted"));
    }
    let stopped = resolve::instances(c, vec![filter("tag-key", &[STOPPED_TAG.into()])]).await?;
    for i in stopped.iter().filter(|i| i.state != "terminated") {
        let run = i.tags.get(STOPPED_TAG).cloned().unwrap_or_default();
        if matches!(i.state.as_str(), "stopped" | "stopping") {
            c.ec2
                .start_instances()
                .instance_ids(&i.id)
                .send()
                .await
                .map_err(|e| api_err("ec2:StartInstances", &i.id, e))?;
            done.push(format!("instance {}: started (stopped by {run})", i.id));
        }
        c.ec2
            .delete_tags()
            .resources(&i.id)
            .tags(aws_sdk_ec2::types::Tag::builder().key(STOPPED_TAG).build())
            .send()
            .await
            .map_err(|e| api_err("ec2:DeleteTags", &i.id, e))?;
    }
    if let Some(AppRole::Asg(name)) = &spec.app {
        let g = resolve::asg(c, name).await?;
        if let Some(original) = g.tags.get(ASG_TAG) {
            c.asg
                .update_auto_scaling_group()
                .auto_scaling_group_name(name)
                .vpc_zone_identifier(original)
                .send()
                .await
                .map_err(|e| api_err("autoscaling:UpdateAutoScalingGroup", name, e))?;
            actions::delete_asg_tag(c, name).await?;
            done.push(format!(
                "auto scaling group {name}: subnets restored to {original}"
            ));
        }
    }
    Ok(done)
}

/// The default network ACL of the VPC `acl` is in.
async fn default_acl(c: &super::Clients, acl: &str) -> Result<String, DriverError> {
    let r = c
        .ec2
        .describe_network_acls()
        .network_acl_ids(acl)
        .send()
        .await
        .map_err(|e| api_err("ec2:DescribeNetworkAcls", acl, e))?;
    let vpc = r
        .network_acls()
        .first()
        .and_then(|a| a.vpc_id())
        .unwrap_or_default()
        .to_string();
    let r = c
        .ec2
        .describe_network_acls()
        .filters(filter("vpc-id", std::slice::from_ref(&vpc)))
        .filters(filter("default", &["true".into()]))
        .send()
        .await
        .map_err(|e| api_err("ec2:DescribeNetworkAcls", &vpc, e))?;
    r.network_acls()
        .first()
        .and_then(|a| a.network_acl_id())
        .map(str::to_string)
        .ok_or_else(|| DriverError::Permanent(format!("VPC {vpc} has no default network ACL")))
}
