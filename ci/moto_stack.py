#!/usr/bin/env python3
"""Build a realistic multi-AZ stack in a moto server for the chaos AWS driver tests.

Usage (with the venv that has moto[server], which brings boto3):
    python ci/moto_stack.py --endpoint-url http://127.0.0.1:5055 [--region eu-west-1] [--name notes-moto]

Prints ONE JSON object on stdout with every id created; progress goes to stderr.
Tests are expected to `POST /moto-api/reset` before calling this, so the script
does not try to reuse or clean up existing resources.
"""
import argparse
import json
import os
import sys

import boto3

TAG = {"Key": "chaos", "Value": "allowed"}


def log(msg):
    print(msg, file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint-url", required=True)
    ap.add_argument("--region", default="eu-west-1")
    ap.add_argument("--name", default="notes-moto")
    ap.add_argument("--reset", action="store_true",
                    help="POST /moto-api/reset first (and stop enforcing IAM, if a test left it on)")
    ap.add_argument("--state", action="store_true",
                    help="print the state a fault may change (no ids that change on re-creation) instead of building")
    args = ap.parse_args()
    if args.reset:
        import urllib.request
        base = args.endpoint_url.rstrip("/")
        # A body moto reads as the count, not as a form (urllib's default content type).
        urllib.request.urlopen(urllib.request.Request(
            base + "/moto-api/reset-auth", data=b"inf",
            headers={"Content-Type": "text/plain"})).read()
        urllib.request.urlopen(base + "/moto-api/reset", data=b"").read()

    # moto accepts any credentials, but botocore refuses to sign without some;
    # dummy env keys also keep a developer's ~/.aws profile from being picked up.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    session = boto3.session.Session(region_name=args.region)

    def client(service):
        return session.client(service, endpoint_url=args.endpoint_url)

    ec2, asg, rds, ec = client("ec2"), client("autoscaling"), client("rds"), client("elasticache")
    if args.state:
        print(json.dumps(state(ec2, asg, rds, ec), indent=1, sort_keys=True))
        return
    name, region = args.name, args.region
    zones = [region + s for s in ("a", "b", "c")]

    # --- network: one VPC, one subnet per AZ, all on the VPC's default NACL ---
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "Name", "Value": name}])
    subnets = {}
    for i, az in enumerate(zones):
        sn = ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=az)
        subnets[az] = sn["Subnet"]["SubnetId"]
    # The driver touches only what carries the opt-in tag: the subnets too (an az-outage
    # re-associates them with a deny-all network ACL).
    ec2.create_tags(Resources=list(subnets.values()), Tags=[TAG])
    subnet_ids = [subnets[az] for az in zones]
    nacl = ec2.describe_network_acls(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "default", "Values": ["true"]}]
    )["NetworkAcls"][0]
    log(f"vpc {vpc_id} subnets {subnet_ids}")

    # --- security groups: the cache SG trusts the app SG (what a partition cuts)
    # plus an unrelated CIDR rule that a partition fault must leave untouched ---
    app_sg = ec2.create_security_group(GroupName=f"{name}-app", Description="app", VpcId=vpc_id)["GroupId"]
    cache_sg = ec2.create_security_group(GroupName=f"{name}-cache", Description="cache", VpcId=vpc_id)["GroupId"]
    ec2.create_tags(Resources=[app_sg, cache_sg], Tags=[TAG])
    ec2.authorize_security_group_ingress(
        GroupId=cache_sg,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379,
             "UserIdGroupPairs": [{"GroupId": app_sg, "Description": "redis from app"}]},
            {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379,
             "IpRanges": [{"CidrIp": "10.9.0.0/16", "Description": "redis from ops vpc"}]},
        ],
    )

    # --- compute: ASG of 6 spread over the three subnets, in the app SG ---
    lt = ec2.create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro",
                            "SecurityGroupIds": [app_sg]},
    )["LaunchTemplate"]
    # moto (5.2.5) launches every ASG instance into the FIRST subnet of
    # VPCZoneIdentifier. To get the 2/2/2 spread a real ASG would have, grow
    # the group two at a time with that list rotated, then set it back to a,b,c.
    lt_spec = {"LaunchTemplateId": lt["LaunchTemplateId"], "Version": "$Latest"}
    asg.create_auto_scaling_group(
        AutoScalingGroupName=name, LaunchTemplate=lt_spec,
        MinSize=0, MaxSize=6, DesiredCapacity=2, VPCZoneIdentifier=",".join(subnet_ids),
        Tags=[{**TAG, "PropagateAtLaunch": True, "ResourceId": name, "ResourceType": "auto-scaling-group"}],
    )
    for k, desired in ((1, 4), (2, 6)):
        rotated = subnet_ids[k:] + subnet_ids[:k]
        asg.update_auto_scaling_group(AutoScalingGroupName=name, VPCZoneIdentifier=",".join(rotated),
                                      DesiredCapacity=desired)
    asg.update_auto_scaling_group(AutoScalingGroupName=name, VPCZoneIdentifier=",".join(subnet_ids),
                                  MinSize=6, MaxSize=6, DesiredCapacity=6)
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    instance_ids = [i["InstanceId"] for i in group["Instances"]]
    reservations = ec2.describe_instances(InstanceIds=instance_ids)["Reservations"]
    instances = [i for r in reservations for i in r["Instances"]]
    # moto 5.2.5 does propagate PropagateAtLaunch tags (and the launch template's
    # security groups); re-tag only in case another version stops doing so.
    untagged = [i["InstanceId"] for i in instances if TAG not in i.get("Tags", [])]
    if untagged:
        log(f"moto did not propagate the ASG tag; tagging {untagged} with create_tags")
        ec2.create_tags(Resources=untagged, Tags=[TAG])
    inst_az = {i["InstanceId"]: i["Placement"]["AvailabilityZone"] for i in instances}
    log(f"asg {name} instances {inst_az}")

    # --- Aurora: writer in a, readers in b and c ---
    rds_subnet_group = f"{name}-db"
    rds.create_db_subnet_group(DBSubnetGroupName=rds_subnet_group, DBSubnetGroupDescription=name,
                               SubnetIds=subnet_ids)
    cluster = rds.create_db_cluster(
        DBClusterIdentifier=name, Engine="aurora-postgresql", MasterUsername="chaos",
        MasterUserPassword="chaos-password", DBSubnetGroupName=rds_subnet_group,
        VpcSecurityGroupIds=[app_sg], Tags=[TAG],
    )["DBCluster"]
    db_instances = {}
    for role, az in zip(("writer", "reader-1", "reader-2"), zones):
        ident = f"{name}-{role}"
        # created in order, so the first instance becomes the writer
        rds.create_db_instance(
            DBInstanceIdentifier=ident, DBClusterIdentifier=name, Engine="aurora-postgresql",
            DBInstanceClass="db.r6g.large", AvailabilityZone=az, Tags=[TAG],
        )
        db_instances[ident] = az
    log(f"aurora {name} instances {db_instances}")

    # --- ElastiCache: one shard, primary + 2 replicas, in the cache SG ---
    cache_subnet_group = f"{name}-cache"
    ec.create_cache_subnet_group(CacheSubnetGroupName=cache_subnet_group,
                                 CacheSubnetGroupDescription=name, SubnetIds=subnet_ids)
    rg = ec.create_replication_group(
        ReplicationGroupId=name, ReplicationGroupDescription=name, Engine="redis",
        CacheNodeType="cache.t3.micro", NumNodeGroups=1, ReplicasPerNodeGroup=2,
        # without explicit AZs moto reports us-east-1a/us-east-1b whatever the region. The
        # primary (the first) in zone b: moto has no TestFailover, so an az-outage of zone a
        # must not need one.
        PreferredCacheClusterAZs=zones[1:] + zones[:1],
        AutomaticFailoverEnabled=True, MultiAZEnabled=True,
        CacheSubnetGroupName=cache_subnet_group, SecurityGroupIds=[cache_sg], Tags=[TAG],
    )["ReplicationGroup"]
    members = rg["NodeGroups"][0]["NodeGroupMembers"]
    cache_nodes = {m["CacheClusterId"]: m["PreferredAvailabilityZone"] for m in members}
    log(f"elasticache {name} members {cache_nodes}")

    print(json.dumps({
        "region": region,
        "name": name,
        "vpc_id": vpc_id,
        "subnets": subnets,  # az -> subnet id
        "subnet_ids": subnet_ids,  # in a, b, c order, as in VPCZoneIdentifier
        "default_network_acl_id": nacl["NetworkAclId"],
        "app_security_group_id": app_sg,
        "cache_security_group_id": cache_sg,
        "launch_template_id": lt["LaunchTemplateId"],
        "autoscaling_group_name": name,
        "instances": inst_az,  # instance id -> az
        "db_cluster_identifier": name,
        "db_cluster_arn": cluster["DBClusterArn"],
        "db_subnet_group": rds_subnet_group,
        "db_instances": db_instances,  # identifier -> az; "<name>-writer" is the writer
        "replication_group_id": name,
        "replication_group_arn": rg.get("ARN"),
        "cache_clusters": cache_nodes,  # cache cluster id -> az; "<name>-001" (the primary) is in zone b
        "cache_subnet_group": cache_subnet_group,
    }, indent=2))


def state(ec2, asg, rds, ec):
    """What faults change, in a comparable form: network ACLs and their subnets, instance
    states and tags, auto scaling groups, the database's writer, security-group ingress (rule
    ids left out: a re-authorized rule gets a new one), the cache's primaries."""
    tags = lambda t: sorted((x["Key"], x["Value"]) for x in (t or []))
    acls = sorted((a["NetworkAclId"], sorted(x["SubnetId"] for x in a["Associations"]), tags(a.get("Tags")))
                  for a in ec2.describe_network_acls()["NetworkAcls"])
    insts = sorted((i["InstanceId"], i["State"]["Name"], tags(i.get("Tags")))
                   for r in ec2.describe_instances()["Reservations"] for i in r["Instances"])
    groups = sorted((g["AutoScalingGroupName"], g["VPCZoneIdentifier"], tags(g.get("Tags")),
                     sorted(i["InstanceId"] for i in g["Instances"]))
                    for g in asg.describe_auto_scaling_groups()["AutoScalingGroups"])
    writers = sorted((m["DBInstanceIdentifier"], m["IsClusterWriter"])
                     for c in rds.describe_db_clusters()["DBClusters"] for m in c["DBClusterMembers"])
    ingress = sorted((g["GroupId"], json.dumps(sorted(json.dumps(p, sort_keys=True) for p in g["IpPermissions"])))
                     for g in ec2.describe_security_groups()["SecurityGroups"])
    primaries = sorted((m["CacheClusterId"], m.get("CurrentRole"))
                       for g in ec.describe_replication_groups()["ReplicationGroups"]
                       for n in g["NodeGroups"] for m in n["NodeGroupMembers"])
    return {"acls": acls, "instances": insts, "asgs": groups, "writers": writers,
            "ingress": ingress, "cache": primaries}


if __name__ == "__main__":
    main()
