//! Reviewers must see the effective policy: each shipped policy has its
//! review document (`cargo pvgate report`) committed beside it as
//! `policy/NAME.review.md`, so every policy change shows its effect in the
//! diff under review. A stale document fails here.
//! Regenerate: `PVGATE_BLESS=1 cargo test -p pvgate-cli --test reviewed_tables`.

mod common;

use common::{pvgate, root};

#[test]
fn committed_review_documents_are_fresh() {
    for name in ["default", "strict"] {
        let policy = format!("policy/{name}.toml");
        let run = pvgate(&["report", &policy]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let path = root().join(format!("policy/{name}.review.md"));
        if std::env::var_os("PVGATE_BLESS").is_some() {
            std::fs::write(&path, &run.stdout).expect("write the review document");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == run.stdout,
            "{} is stale: run `PVGATE_BLESS=1 cargo test -p pvgate-cli --test reviewed_tables`",
            path.display()
        );
    }
}
