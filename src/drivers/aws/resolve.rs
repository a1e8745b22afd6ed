//! The aws driver's read calls: what the target's roles are right now (the app's instances,
//! the subnets and network ACLs of a zone, the database's writer and readers, the cache's
//! primaries, the security-group rules that admit the app to the cache). Only `Describe*` and
//! `List*` calls live here: planning and confirming use nothing else, so `chaos plan` changes
//! nothing on the account.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;

use super::clients::{api_err, Clients};
use crate::fault::DriverError;
use crate::target::aws::Tag;

pub type Tags = BTreeMap<String, String>;

/// A resource's tags as a map (every SDK has its own tag type, each with `key` and `value`).
macro_rules! tags {
    ($list:expr) => {
        $list
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect::<Tags>()
    };
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub state: String,
    pub az: String,
    pub subnet: String,
    pub vpc: String,
    pub groups: Vec<String>,
    pub tags: Tags,
}

pub fn filter(name: &str, values: &[String]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.to_vec()))
        .build()
}

/// Instances matching `filters` (every page).
pub async fn instances(c: &Clients, filters: Vec<Filter>) -> Result<Vec<Instance>, DriverError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let r = c
            .ec2
            .describe_instances()
            .set_filters(Some(filters.clone()))
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| api_err("ec2:DescribeInstances", "", e))?;
        for i in r.reservations().iter().flat_map(|r| r.instances()) {
            out.push(Instance {
                id: i.instance_id().unwrap_or_default().to_string(),
                state: i
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default(),
                az: i
                    .placement()
                    .and_then(|p| p.availability_zone())
                    .unwrap_or_default()
                    .to_string(),
                subnet: i.subnet_id().unwrap_or_default().to_string(),
                vpc: i.vpc_id().unwrap_or_default().to_string(),
                groups: i
                    .security_groups()
                    .iter()
                    .filter_map(|g| g.group_id().map(str::to_string))
                    .collect(),
                tags: tags!(i.tags()),
            });
        }
        token = r.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct Asg {
    pub name: String,
    pub vpc_zone_identifier: String,
    pub instances: Vec<String>,
    pub tags: Tags,
}

pub async fn asg(c: &Clients, name: &str) -> Result<Asg, DriverError> {
    let r = c
        .asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .map_err(|e| api_err("autoscaling:DescribeAutoScalingGroups", name, e))?;
    let g = r
        .auto_scaling_groups()
        .iter()
        .find(|g| g.auto_scaling_group_name() == Some(name))
        .ok_or_else(|| {
            DriverError::Permanent(format!(
                "no auto scaling group `{name}` in this account and region (roles.app.asg)"
            ))
        })?;
    Ok(Asg {
        name: name.to_string(),
        vpc_zone_identifier: g.vpc_zone_identifier().unwrap_or_default().to_string(),
        instances: g
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect(),
        tags: tags!(g.tags()),
    })
}

#[derive(Debug, Clone)]
pub struct Subnet {
    pub id: String,
    pub vpc: String,
    pub az: String,
    pub tags: Tags,
}

pub async fn subnets(c: &Clients, filters: Vec<Filter>) -> Result<Vec<Subnet>, DriverError> {
    let r = c
        .ec2
        .describe_subnets()
        .set_filters(Some(filters))
        .send()
        .await
        .map_err(|e| api_err("ec2:DescribeSubnets", "", e))?;
    let mut out: Vec<Subnet> = r
        .subnets()
        .iter()
        .map(|s| Subnet {
            id: s.subnet_id().unwrap_or_default().to_string(),
            vpc: s.vpc_id().unwrap_or_default().to_string(),
            az: s.availability_zone().unwrap_or_default().to_string(),
            tags: tags!(s.tags()),
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// A subnet's network ACL association: (association id, ACL id, the ACL's tags).
pub async fn acl_of(c: &Clients, subnet: &str) -> Result<(String, String, Tags), DriverError> {
    let r = c
        .ec2
        .describe_network_acls()
        .filters(filter("association.subnet-id", &[subnet.to_string()]))
        .send()
        .await
        .map_err(|e| api_err("ec2:DescribeNetworkAcls", subnet, e))?;
    for acl in r.network_acls() {
        for a in acl.associations() {
            if a.subnet_id() == Some(subnet) {
                let tags = tags!(acl.tags());
                return Ok((
                    a.network_acl_association_id()
                        .unwrap_or_default()
                        .to_string(),
                    acl.network_acl_id().unwrap_or_default().to_string(),
                    tags,
                ));
            }
        }
    }
    Err(DriverError::Permanent(format!(
        "subnet {subnet} has no network ACL association"
    )))
}

/// Network ACLs carrying a tag key (with `value`, if given): what this driver created.
pub async fn acls_tagged(
    c: &Clients,
    key: &str,
    value: Option<&str>,
) -> Result<Vec<(String, Vec<String>, Tags)>, DriverError> {
    let f = match value {
        Some(v) => filter(&format!("tag:{key}"), &[v.to_string()]),
        None => filter("tag-key", &[key.to_string()]),
    };
    let r = c
        .ec2
        .describe_network_acls()
        .filters(f)
        .send()
        .await
        .map_err(|e| api_err("ec2:DescribeNetworkAcls", "", e))?;
    Ok(r.network_acls()
        .iter()
        .map(|a| {
            (
                a.network_acl_id().unwrap_or_default().to_string(),
                a.associations()
                    .iter()
                    .filter_map(|x| x.subnet_id().map(str::to_string))
                    .collect(),
                tags!(a.tags()),
            )
        })
        .collect())
}

#[derive(Debug, Clone)]
pub struct DbMember {
    pub id: String,
    pub writer: bool,
    pub az: String,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub members: Vec<DbMember>,
    pub tags: Tags,
}

impl Cluster {
    pub fn writer(&self) -> Option<&DbMember> {
        self.members.iter().find(|m| m.writer)
    }
}

pub async fn aurora(c: &Clients, id: &str) -> Result<Cluster, DriverError> {
    let r = c
        .rds
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
        .map_err(|e| api_err("rds:DescribeDBClusters", id, e))?;
    let cl = r.db_clusters().first().ok_or_else(|| {
        DriverError::Permanent(format!(
            "no Aurora cluster `{id}` in this account and region"
        ))
    })?;
    let mut members = Vec::new();
    for m in cl.db_cluster_members() {
        let mid = m.db_instance_identifier().unwrap_or_default().to_string();
        let az = rds_instance(c, &mid).await?.az;
        members.push(DbMember {
            id: mid,
            writer: m.is_cluster_writer().unwrap_or(false),
            az,
        });
    }
    members.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Cluster {
        members,
        tags: tags!(cl.tag_list()),
    })
}

#[derive(Debug, Clone)]
pub struct RdsInstance {
    pub az: String,
    pub multi_az: bool,
    pub tags: Tags,
}

pub async fn rds_instance(c: &Clients, id: &str) -> Result<RdsInstance, DriverError> {
    let r = c
        .rds
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .map_err(|e| api_err("rds:DescribeDBInstances", id, e))?;
    let i = r.db_instances().first().ok_or_else(|| {
        DriverError::Permanent(format!("no RDS instance `{id}` in this account and region"))
    })?;
    Ok(RdsInstance {
        az: i.availability_zone().unwrap_or_default().to_string(),
        multi_az: i.multi_az().unwrap_or(false),
        tags: tags!(i.tag_list()),
    })
}

#[derive(Debug, Clone)]
pub struct NodeGroup {
    pub id: String,
    /// (cache cluster id, role "primary"/"replica", AZ).
    pub members: Vec<(String, String, String)>,
}

impl NodeGroup {
    pub fn primary(&self) -> Option<&(String, String, String)> {
        self.members.iter().find(|m| m.1 == "primary")
    }
}

#[derive(Debug, Clone)]
pub struct ReplicationGroup {
    pub node_groups: Vec<NodeGroup>,
    pub member_clusters: Vec<String>,
    pub tags: Tags,
}

pub async fn replication_group(c: &Clients, id: &str) -> Result<ReplicationGroup, DriverError> {
    let r = c
        .cache
        .describe_replication_groups()
        .replication_group_id(id)
        .send()
        .await
        .map_err(|e| api_err("elasticache:DescribeReplicationGroups", id, e))?;
    let g = r.replication_groups().first().ok_or_else(|| {
        DriverError::Permanent(format!(
            "no ElastiCache replication group `{id}` in this account and region"
        ))
    })?;
    let node_groups = g
        .node_groups()
        .iter()
        .map(|n| NodeGroup {
            id: n.node_group_id().unwrap_or_default().to_string(),
            members: n
                .node_group_members()
                .iter()
                .map(|m| {
                    (
                        m.cache_cluster_id().unwrap_or_default().to_string(),
                        m.current_role().unwrap_or_default().to_string(),
                        m.preferred_availability_zone()
                            .unwrap_or_default()
                            .to_string(),
                    )
                })
                .collect(),
        })
        .collect();
    let tags = match g.arn() {
        Some(arn) => c
            .cache
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .map_err(|e| api_err("elasticache:ListTagsForResource", arn, e))?
            .tag_list()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect(),
        None => Tags::new(),
    };
    Ok(ReplicationGroup {
        node_groups,
        member_clusters: g.member_clusters().to_vec(),
        tags,
    })
}

/// The security groups of the cache's member clusters.
pub async fn cache_groups(c: &Clients, clusters: &[String]) -> Result<Vec<String>, DriverError> {
    let mut out = Vec::new();
    for id in clusters {
        let r = c
            .cache
            .describe_cache_clusters()
            .cache_cluster_id(id)
            .send()
            .await
            .map_err(|e| api_err("elasticache:DescribeCacheClusters", id, e))?;
        for cl in r.cache_clusters() {
            for g in cl.security_groups() {
                if let Some(id) = g.security_group_id() {
                    if !out.iter().any(|x| x == id) {
                        out.push(id.to_string());
                    }
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// One ingress rule that admits a security group (what a cache partition revokes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupRule {
    pub rule_id: String,
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    /// The security group the rule admits.
    pub source_group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// (protocol, from port, to port, source group): what a group-pair rule admits.
type RuleKey = (String, Option<i32>, Option<i32>, String);

/// A security group: its id, tags, and the descriptions of its group-pair ingress rules.
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub tags: Tags,
    /// ((protocol, from, to, source group), description): DescribeSecurityGroupRules may
    /// leave a group pair's description out (moto does); DescribeSecurityGroups has it.
    descriptions: Vec<(RuleKey, String)>,
}

/// Security groups by id (`sg-…`) or name, each found or an error naming it.
pub async fn groups(c: &Clients, refs: &[String]) -> Result<Vec<Group>, DriverError> {
    let (ids, names): (Vec<String>, Vec<String>) =
        refs.iter().cloned().partition(|r| r.starts_with("sg-"));
    let mut found = Vec::new();
    for (filter_name, values) in [("group-id", ids), ("group-name", names)] {
        if values.is_empty() {
            continue;
        }
        let r = c
            .ec2
            .describe_security_groups()
            .filters(filter(filter_name, &values))
            .send()
            .await
            .map_err(|e| api_err("ec2:DescribeSecurityGroups", &values.join(","), e))?;
        for v in &values {
            let hit = r
                .security_groups()
                .iter()
                .find(|g| g.group_id() == Some(v) || g.group_name() == Some(v));
            let Some(g) = hit else {
                return Err(DriverError::Permanent(format!(
                    "no security group `{v}` in this account and region (roles.cache.security_groups)"
                )));
            };
            let mut descriptions = Vec::new();
            for p in g.ip_permissions() {
                for pair in p.user_id_group_pairs() {
                    if let (Some(src), Some(d)) = (pair.group_id(), pair.description()) {
                        descriptions.push((
                            (
                                p.ip_protocol().unwrap_or("-1").to_string(),
                                p.from_port(),
                                p.to_port(),
                                src.to_string(),
                            ),
                            d.to_string(),
                        ));
                    }
                }
            }
            found.push(Group {
                id: g.group_id().unwrap_or_default().to_string(),
                tags: tags!(g.tags()),
                descriptions,
            });
        }
    }
    Ok(found)
}

/// The ingress rules of `group` that admit any of `sources`.
pub async fn group_rules(
    c: &Clients,
    group: &Group,
    sources: &[String],
) -> Result<Vec<GroupRule>, DriverError> {
    let r = c
        .ec2
        .describe_security_group_rules()
        .filters(filter("group-id", std::slice::from_ref(&group.id)))
        .send()
        .await
        .map_err(|e| api_err("ec2:DescribeSecurityGroupRules", &group.id, e))?;
    let mut out = Vec::new();
    for rule in r.security_group_rules() {
        if rule.is_egress().unwrap_or(false) {
            continue;
        }
        let Some(src) = rule.referenced_group_info().and_then(|g| g.group_id()) else {
            continue;
        };
        if !sources.iter().any(|s| s == src) {
            continue;
        }
        let protocol = rule.ip_protocol().unwrap_or("-1").to_string();
        let key = (
            protocol.clone(),
            rule.from_port(),
            rule.to_port(),
            src.to_string(),
        );
        let description = rule.description().map(str::to_string).or_else(|| {
            group
                .descriptions
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, d)| d.clone())
        });
        out.push(GroupRule {
            rule_id: rule
                .security_group_rule_id()
                .unwrap_or_default()
                .to_string(),
            protocol,
            from_port: rule.from_port(),
            to_port: rule.to_port(),
            source_group: src.to_string(),
            source_user: rule
                .referenced_group_info()
                .and_then(|g| g.user_id())
                .map(str::to_string),
            description,
        });
    }
    out.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));
    Ok(out)
}

/// Refuse a resource without the opt-in tag: the one safety check every touched resource
/// passes before it is planned.
pub fn require_tag(what: &str, id: &str, tags: &Tags, tag: &Tag) -> Result<(), DriverError> {
    if tags.get(&tag.key) == Some(&tag.value) {
        return Ok(());
    }
    let has = match tags.get(&tag.key) {
        Some(v) => format!(" (it has {}={v})", tag.key),
        None => String::new(),
    };
    Err(DriverError::Permanent(format!(
        "refused: {what} {id} does not carry the opt-in tag {tag}{has}; the aws driver touches \
         only resources tagged {tag} (the target's opt_in_tag)"
    )))
}
