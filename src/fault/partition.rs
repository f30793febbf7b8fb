//! A partition: groups of nodes that cannot reach each other (`n1|n2 n3`), or a named
//! shape (`halves`, `ring`, `bridge`). Every node that has someone to drop gets a rule
//! table; the clients still reach every node.

use super::grudge::{parse_groups, Grudge, Shape};
use super::verdict::{self, End, Link, Verdict};
use super::{Fault, InForce, Param, ParamDoc, Target};
use crate::error::{Error, Result};
use crate::record::faults::{named, FaultKind};

/// The grudge that `groups` (a shape's name, or groups such as `n1|n2 n3`) makes among the
/// nodes `names`.
pub fn grudge_of(names: &[String], groups: &str) -> Result<Grudge> {
    let n = names.len();
    match Shape::parse(groups.trim()) {
        Some(shape) => Ok(Grudge::shape(shape, n)),
        None => {
            let groups = parse_groups(groups, names)
                .map_err(|e| Error::Invalid(format!("partition: {e}")))?;
            Ok(Grudge::groups(&groups, n))
        }
    }
}

/// `partition GROUPS|SHAPE`, undone by `heal`.
pub struct Partition;

impl Fault for Partition {
    fn kind(&self) -> &'static FaultKind {
        named("partition")
    }
    fn about(&self) -> &'static str {
        "Split the nodes into groups that cannot reach each other: `n1|n2 n3`, or a shape: halves, ring, bridge"
    }
    fn example(&self) -> &'static str {
        "n1|n2 n3"
    }
    fn params(&self) -> &'static [ParamDoc] {
        &[ParamDoc {
            name: "GROUPS",
            help: "groups (`n1|n2 n3`) or a shape: halves, ring, bridge",
            many: true,
        }]
    }
    fn parse(&self, args: &[&str]) -> std::result::Result<(Target, Param), String> {
        if args.is_empty() {
            return Err(
                "'partition' takes a shape (halves, ring, bridge) or groups such as n1|n2 n3"
                    .into(),
            );
        }
        Ok((Target::All, Param::new(args.join(" "))))
    }
    fn render(&self, _target: &Target, param: &Param) -> String {
        format!("partition {}", groups(param))
    }
    fn place(
        &self,
        names: &[String],
        _nodes: Vec<usize>,
        param: &Param,
    ) -> Result<(Vec<usize>, String)> {
        let g = grudge_of(names, groups(param))?;
        let nodes = (0..names.len()).filter(|i| g.0[*i] != 0).collect();
        Ok((nodes, g.describe(names)))
    }
    fn links(&self, names: &[String], _: &InForce, param: &Param) -> Option<Result<Vec<Link>>> {
        Some(grudge_of(names, groups(param)).map(|g| {
            let mut links: Vec<Link> = (0..names.len())
                .flat_map(|i| {
                    g.drops(i)
                        .flat_map(move |j| verdict::both(End::Node(i), End::Node(j), Verdict::Drop))
                        .collect::<Vec<_>>()
                })
                .collect();
            links.sort();
            links.dedup();
            links
        }))
    }
}

fn groups(param: &Param) -> &str {
    param.text()
}
