//! Live check of `application_list` on this host: the dpkg packages it
//! reports are exactly those `dpkg-query` lists as installed, with the same
//! versions and the same (`${binary:Package}`) names.

#![cfg(target_os = "linux")]

use std::collections::BTreeSet;
use std::process::Command;

use chrono::Utc;
use spectra_agent::collectors::application_list::new_collector;
use spectra_agent::collectors::{CollectError, HostRoots};
use spectra_protocol::MetricData;

/// `(name, version)` of every package `dpkg-query` says is installed and
/// configured (status letter `i`, or `t`/`W` when only triggers are
/// pending: see the collector's docs), or `None` without dpkg-query.
fn dpkg_query_installed() -> Option<BTreeSet<(String, String)>> {
    let out = Command::new("dpkg-query")
        .args([
            "-W",
            "-f=${binary:Package}\t${Version}\t${db:Status-Abbrev}\n",
        ])
        .output()
        .ok()?;
    assert!(out.status.success(), "dpkg-query failed: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    Some(
        text.lines()
            .filter_map(|line| {
                let mut f = line.split('\t');
                let (name, version, abbrev) = (f.next()?, f.next()?, f.next()?);
                matches!(abbrev.as_bytes().get(1), Some(b'i' | b't' | b'W'))
                    .then(|| (name.to_owned(), version.to_owned()))
            })
            .collect(),
    )
}

#[test]
fn dpkg_packages_equal_dpkg_query() {
    let result = new_collector(&HostRoots::default()).collect(Utc::now());
    let Some(expected) = dpkg_query_installed() else {
        println!("dpkg-query not installed: comparison skipped; collector said {result:?}");
        if !std::path::Path::new("/var/lib/dpkg/status").exists() {
            // No dpkg on this host: the collector must not invent packages.
            if let Ok(out) = &result {
                let MetricData::ApplicationList(list) = &out[0] else {
                    panic!("{out:?}");
                };
                assert!(list
                    .applications
                    .iter()
                    .all(|a| a.source.as_deref() != Some("dpkg")));
            } else {
                assert!(matches!(result, Err(CollectError::Unsupported(_))));
            }
        }
        return;
    };
    let out = result.expect("dpkg-query works, so the collector must read dpkg's status");
    let [MetricData::ApplicationList(list)] = out.as_slice() else {
        panic!("expected one application_list payload: {out:?}");
    };
    let got: BTreeSet<(String, String)> = list
        .applications
        .iter()
        .filter(|a| a.source.as_deref() == Some("dpkg"))
        .map(|a| (a.name.clone(), a.version.clone()))
        .collect();
    let dpkg_count = list
        .applications
        .iter()
        .filter(|a| a.source.as_deref() == Some("dpkg"))
        .count();
    println!(
        "collector: {dpkg_count} dpkg packages; dpkg-query: {} installed",
        expected.len()
    );
    assert_eq!(dpkg_count, got.len(), "duplicate dpkg entries");
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing (dpkg-query only): {missing:?}\nextra (collector only): {extra:?}"
    );
    assert!(list.applications.iter().all(|a| !a.name.is_empty()));
}
