//! Known-answer tests for `custody_format::merkle` against vectors published by two
//! independent RFC 6962 implementations. RFC 9162 keeps RFC 6962's tree hash, audit paths and
//! consistency proofs unchanged, so these vectors apply as they are.
//!
//! Only the data below is copied from them; the test code is ours. Sources:
//!
//! - [CT] google/certificate-transparency, `cpp/merkletree/merkle_tree_test.cc`
//!   (commit 0e901cacd1388fa16f78b184612f6cd16e5ceec1): `kInputs`, `kSHA256EmptyTreeHash`,
//!   `kSHA256Roots`, `kSHA256Paths`, `kSHA256Proofs`, and the corruptions tried by
//!   `MerkleVerifierTest::VerifierCheck` and `VerifierConsistencyCheck`.
//! - [TD-CONST] transparency-dev/merkle, `testonly/constants.go`
//!   (commit 582a6ad190b6848f1d26f8bf08ddef29955d9db1): `LeafInputs`, `NodeHashes`,
//!   `RootHashes`, `EmptyRootHash`.
//! - [TD-REF] transparency-dev/merkle, `testonly/reference_test.go`
//!   (commit 141d627eab770a7e9a2514f46a8b6338e6d90874): `TestRefInclusionProof`,
//!   `TestRefConsistencyProof`.
//! - [TD-VERIFY] transparency-dev/merkle, `proof/verify_test.go`
//!   (commit 02194e9afb6c1d95b5381350007963aa70fff472): `inclusionProofs`,
//!   `consistencyProofs`, `roots`, `leaves`, `sha256SomeHash`, `corruptInclusionProof`,
//!   `corruptConsistencyProof`, `TestVerifyInclusion`, `TestVerifyConsistency`.
//!
//! [CT] and [TD-VERIFY] number leaves from 1 in their path tables; the indices below are
//! 0-based, as in [TD-REF] and in our API.

use custody_format::merkle::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash, root, verify_consistency,
    verify_inclusion, MerkleError, Tree,
};

type Hash = [u8; 32];

/// The eight reference leaf inputs, hex. [CT] `kInputs`, [TD-CONST] `LeafInputs`,
/// [TD-VERIFY] `leaves`. The last is 16 bytes, 0x60..=0x6f.
const LEAF_INPUTS: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// Roots of the trees of the first 0..=8 leaves. Index 0 is [CT] `kSHA256EmptyTreeHash` /
/// [TD-CONST] `EmptyRootHash`; 1..=8 are [CT] `kSHA256Roots`, [TD-CONST] `RootHashes`,
/// [TD-VERIFY] `roots`.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// Every complete subtree of the 8-leaf tree, by level (0 = leaf hashes). [TD-CONST]
/// `NodeHashes`.
const NODE_HASHES: [&[&str]; 4] = [
    &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    &[
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    &[
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];

/// (leaf index, tree size, audit path). (0, 1), (2, 3), (1, 5), (0, 8) and (5, 8) are in
/// [CT] `kSHA256Paths` and [TD-VERIFY] `inclusionProofs` (as leaf 1/1, 3/3, 2/5, 1/8, 6/8);
/// all seven are in [TD-REF] `TestRefInclusionProof`.
const INCLUSION: &[(u64, u64, &[&str])] = &[
    (0, 1, &[]),
    (0, 2, &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]),
    (1, 2, &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"]),
    (2, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

/// (old size, new size, consistency proof). The first four are in [CT] `kSHA256Proofs`,
/// [TD-REF] `TestRefConsistencyProof` and [TD-VERIFY] `consistencyProofs`; (6, 7) is in
/// [TD-VERIFY] `consistencyProofs` only.
const CONSISTENCY: &[(u64, u64, &[&str])] = &[
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

/// [TD-VERIFY] `sha256SomeHash`, an arbitrary hash used as a wrong root or proof element.
const SOME_HASH: &str = "abacaba000000000000000000000000000000000000000000060061e00123456";

fn h(hex_str: &str) -> Hash {
    hex::decode(hex_str).unwrap().try_into().unwrap()
}

fn hashes(list: &[&str]) -> Vec<Hash> {
    list.iter().map(|x| h(x)).collect()
}

fn leaf_hashes() -> Vec<Hash> {
    LEAF_INPUTS.iter().map(|x| leaf_hash(&hex::decode(x).unwrap())).collect()
}

fn with(proof: &[Hash], before: &[Hash], after: &[Hash]) -> Vec<Hash> {
    [before, proof, after].concat()
}

#[test]
fn leaf_node_and_root_hashes_match() {
    assert_eq!(empty_root(), h(ROOTS[0]));
    let leaves = leaf_hashes();
    assert_eq!(leaves, hashes(NODE_HASHES[0]));
    for level in 1..NODE_HASHES.len() {
        let below = hashes(NODE_HASHES[level - 1]);
        let built: Vec<Hash> = below.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
        assert_eq!(built, hashes(NODE_HASHES[level]), "level {level}");
    }
    for (size, want) in ROOTS.iter().enumerate() {
        assert_eq!(root(&leaves[..size]), h(want), "root of {size} leaves");
    }
}

#[test]
fn our_inclusion_proofs_are_the_published_ones() {
    let leaves = leaf_hashes();
    for &(index, size, want) in INCLUSION {
        let got = inclusion_proof(&leaves[..size as usize], index).unwrap();
        assert_eq!(got, hashes(want), "PATH({index}, D[{size}])");
    }
}

#[test]
fn our_consistency_proofs_are_the_published_ones() {
    let leaves = leaf_hashes();
    for &(old, new, want) in CONSISTENCY {
        assert_eq!(consistency_proof(&leaves, old, new).unwrap(), hashes(want), "{old}->{new}");
    }
}

/// [TD-VERIFY] `verifierCheck` / `corruptInclusionProof`, [CT] `VerifierCheck`: the
/// published proof verifies, and none of the published corruptions does. An empty byte
/// string cannot be a 32-byte hash here, so "garbage" is an all-zero hash, and the wrong
/// leaf is the leaf hash of "WrongLeaf".
#[test]
fn the_subtree_cache_gives_the_published_hashes_roots_and_proofs() {
    let tree = Tree::from_leaves(leaf_hashes());
    for (level, row) in NODE_HASHES.iter().enumerate() {
        for (i, want) in row.iter().enumerate() {
            assert_eq!(tree.subtree(level as u32, i as u64), Some(h(want)), "level {level} #{i}");
        }
    }
    for (size, want) in ROOTS.iter().enumerate() {
        assert_eq!(tree.root_at(size as u64), Ok(h(want)), "root of {size} leaves");
    }
    for &(index, size, want) in INCLUSION {
        assert_eq!(
            tree.inclusion_proof(index, size).unwrap(),
            hashes(want),
            "PATH({index}, {size})"
        );
    }
    for &(old, new, want) in CONSISTENCY {
        assert_eq!(tree.consistency_proof(old, new).unwrap(), hashes(want), "{old}->{new}");
    }
}

#[test]
fn published_inclusion_proofs_verify_and_their_corruptions_do_not() {
    let leaves = leaf_hashes();
    let (some, zero) = (h(SOME_HASH), [0u8; 32]);
    for &(i, n, proof) in INCLUSION {
        let (p, r, leaf) = (hashes(proof), h(ROOTS[n as usize]), leaves[i as usize]);
        assert_eq!(verify_inclusion(&leaf, i, n, &p, &r), Ok(()), "{i} in {n}");
        let mut probes = vec![
            (i.wrapping_sub(1), n, leaf, p.clone(), r, "index - 1"),
            (i + 1, n, leaf, p.clone(), r, "index + 1"),
            (i ^ 2, n, leaf, p.clone(), r, "index ^ 2"),
            (i, n * 2, leaf, p.clone(), r, "size * 2"),
            (i, n / 2, leaf, p.clone(), r, "size / 2"),
            (i, n, leaf_hash(b"WrongLeaf"), p.clone(), r, "wrong leaf"),
            (i, n, leaf, p.clone(), empty_root(), "empty root"),
            (i, n, leaf, p.clone(), some, "random root"),
            (i, n, leaf, with(&p, &[], &[zero]), r, "trailing garbage"),
            (i, n, leaf, with(&p, &[], &[r]), r, "trailing root"),
            (i, n, leaf, with(&p, &[zero], &[]), r, "preceding garbage"),
            (i, n, leaf, with(&p, &[r], &[]), r, "preceding root"),
        ];
        for j in 0..p.len() {
            let mut bad = p.clone();
            bad[j][0] ^= 8;
            probes.push((i, n, leaf, bad, r, "modified proof element, bit 3"));
        }
        if let Some((_, short)) = p.split_last() {
            probes.push((i, n, leaf, short.to_vec(), r, "removed component"));
        }
        if p.len() > 1 {
            probes.push((i, n, leaf, with(&p[1..], &[p[0], some], &[]), r, "inserted component"));
        }
        for (i2, n2, leaf2, p2, r2, what) in probes {
            assert!(verify_inclusion(&leaf2, i2, n2, &p2, &r2).is_err(), "{i} in {n}: {what}");
        }
    }
    // [TD-VERIFY] `TestVerifyInclusion` probes with an empty proof, and the single-entry
    // tree of `TestVerifyInclusionSingleEntry`.
    for (i, n) in [(0, 0), (0, 1), (1, 0), (2, 1)] {
        assert!(verify_inclusion(&some, i, n, &[], &empty_root()).is_err(), "{i} in {n}");
    }
    let data = leaf_hash(b"data");
    assert_eq!(verify_inclusion(&data, 0, 1, &[], &data), Ok(()));
}

/// [TD-VERIFY] `verifierConsistencyCheck` / `corruptConsistencyProof`, [CT]
/// `VerifierConsistencyCheck`, as above; "WrongRoot" becomes `sha256SomeHash`.
#[test]
fn published_consistency_proofs_verify_and_their_corruptions_do_not() {
    let (some, zero) = (h(SOME_HASH), [0u8; 32]);
    for &(m, n, proof) in CONSISTENCY {
        let (p, r1, r2) = (hashes(proof), h(ROOTS[m as usize]), h(ROOTS[n as usize]));
        assert_eq!(verify_consistency(m, n, &r1, &r2, &p), Ok(()), "{m}->{n}");
        if p.is_empty() {
            continue; // The published checks corrupt only non-trivial proofs.
        }
        let mut probes = vec![
            (m - 1, n, r1, r2, p.clone(), "size1 - 1"),
            (m + 1, n, r1, r2, p.clone(), "size1 + 1"),
            (m ^ 2, n, r1, r2, p.clone(), "size1 ^ 2"),
            (m, n * 2, r1, r2, p.clone(), "size2 * 2"),
            (m, n / 2, r1, r2, p.clone(), "size2 / 2"),
            (m, n, some, r2, p.clone(), "wrong root1"),
            (m, n, r1, some, p.clone(), "wrong root2"),
            (m, n, r2, r1, p.clone(), "swapped roots"),
            (m, n, r1, r2, vec![], "empty proof"),
            (m, n, r1, r2, with(&p, &[], &[zero]), "trailing garbage"),
            (m, n, r1, r2, with(&p, &[], &[r1]), "trailing root1"),
            (m, n, r1, r2, with(&p, &[], &[r2]), "trailing root2"),
            (m, n, r1, r2, with(&p, &[zero], &[]), "preceding garbage"),
            (m, n, r1, r2, with(&p, &[r1], &[]), "preceding root1"),
            (m, n, r1, r2, with(&p, &[r2], &[]), "preceding root2"),
            (m, n, r1, r2, with(&p, &[p[0]], &[]), "preceding proof[0]"),
            (m, n, r1, r2, p[..p.len() - 1].to_vec(), "truncated proof"),
        ];
        for j in 0..p.len() {
            let mut bad = p.clone();
            bad[j][0] ^= 16;
            probes.push((m, n, r1, r2, bad, "modified proof element, bit 4"));
        }
        for (m2, n2, a, b, p2, what) in probes {
            assert!(verify_consistency(m2, n2, &a, &b, &p2).is_err(), "{m}->{n}: {what}");
        }
    }
}

/// [TD-VERIFY] `TestVerifyConsistency`'s table. One deliberate difference: transparency-dev
/// accepts any old root for an old size of 0 ("don't care"), while we require MTH({}), the
/// only root a tree of size 0 has; the accepted cases here use that root.
#[test]
fn published_trivial_consistency_cases() {
    let (e, a, b) = (empty_root(), h(ROOTS[1]), h(ROOTS[2]));
    let ok: [(u64, u64, Hash, Hash, Vec<Hash>); 3] =
        [(0, 0, e, e, vec![]), (0, 1, e, a, vec![]), (1, 1, b, b, vec![])];
    for (m, n, r1, r2, p) in ok {
        assert_eq!(verify_consistency(m, n, &r1, &r2, &p), Ok(()), "{m}->{n}");
    }
    let bad: [(u64, u64, Hash, Hash, Vec<Hash>, MerkleError); 10] = [
        (0, 0, a, b, vec![], MerkleError::RootMismatch),
        (1, 1, a, b, vec![], MerkleError::RootMismatch),
        (1, 0, a, b, vec![], MerkleError::SizesInvalid { old_size: 1, new_size: 0 }),
        (2, 1, a, b, vec![], MerkleError::SizesInvalid { old_size: 2, new_size: 1 }),
        (1, 2, a, b, vec![], MerkleError::ProofWrongLength { len: 0, expected: 1 }),
        (0, 0, e, b, vec![], MerkleError::RootMismatch),
        (1, 1, e, b, vec![], MerkleError::RootMismatch),
        (0, 0, e, e, vec![e], MerkleError::ProofWrongLength { len: 1, expected: 0 }),
        (0, 1, e, e, vec![e], MerkleError::ProofWrongLength { len: 1, expected: 0 }),
        (1, 1, e, e, vec![e], MerkleError::ProofWrongLength { len: 1, expected: 0 }),
    ];
    for (m, n, r1, r2, p, want) in bad {
        assert_eq!(verify_consistency(m, n, &r1, &r2, &p), Err(want), "{m}->{n}");
    }
}
