//! CloudBlue RDE across the workspace: the API surface of specs/cloudblue.yaml as an insta
//! snapshot, so a spec edit is reviewed as a short readable diff (`cargo insta review`).

use integration_tests::{api_surface, load_spec};

#[test]
fn cloudblue_api_surface() {
    insta::assert_snapshot!(api_surface(&load_spec("cloudblue")));
}
