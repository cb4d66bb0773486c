#![allow(clippy::unwrap_used)]
use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

const KEY: &str = "podinfo.test";

fn request(action: RequestAction, force: bool) -> Request {
    Request {
        id: "r-1".into(),
        action,
        by: "alice".into(),
        force,
    }
}

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn last(id: &str, outcome: RequestOutcome) -> HandledRequest {
    HandledRequest {
        id: id.into(),
        action: Some(RequestAction::Promote),
        by: "alice".into(),
        outcome,
        message: None,
        time: Time(Timestamp::UNIX_EPOCH),
    }
}

/// Every action in every phase, not paused: what happens (`-` = refused).
#[test]
fn actions_by_phase() {
    use CanaryPhase as P;
    let table = [
        // phase               promote  abort    retry
        (P::Empty, "-", "-", "-"),
        (P::Initializing, "-", "-", "-"),
        (P::Initialized, "-", "-", "-"),
        (P::Waiting, "-", "abort", "-"),
        (P::Progressing, "promote", "abort", "-"),
        (P::WaitingPromotion, "promote", "abort", "-"),
        (P::Promoting, "-", "-", "-"),
        (P::Finalising, "-", "-", "-"),
        (P::Succeeded, "-", "-", "-"),
        (P::Failed, "-", "-", "retry"),
        (P::Terminating, "-", "-", "-"),
        (P::Terminated, "-", "-", "-"),
    ];
    let word = |p: Plan| match p {
        Plan::Promote { force: false } => "promote",
        Plan::Promote { force: true } => "force",
        Plan::Abort => "abort",
        Plan::Retry => "retry",
        Plan::Resume => "resume",
        Plan::Refuse(_) => "-",
        Plan::Drop => "drop",
    };
    for (phase, promote, abort, retry) in table {
        let got = [
            RequestAction::Promote,
            RequestAction::Abort,
            RequestAction::Retry,
        ]
        .map(|a| word(plan(&request(a, false), KEY, phase, false, false, false)));
        assert_eq!(got, [promote, abort, retry], "{phase:?}");
    }
    assert_eq!(
        plan(
            &request(RequestAction::Promote, true),
            KEY,
            P::WaitingPromotion,
            false,
            false,
            false
        ),
        Plan::Promote { force: true }
    );
}

#[test]
fn a_paused_canary_can_be_aborted_but_not_promoted_or_retried() {
    let promote = request(RequestAction::Promote, false);
    assert_eq!(
        plan(&promote, KEY, CanaryPhase::Progressing, true, false, false),
        Plan::Refuse("podinfo.test is paused: resume it first".into())
    );
    let abort = request(RequestAction::Abort, false);
    assert_eq!(
        plan(&abort, KEY, CanaryPhase::Progressing, true, false, false),
        Plan::Abort
    );
    let retry = request(RequestAction::Retry, false);
    assert_eq!(
        plan(&retry, KEY, CanaryPhase::Failed, true, false, false),
        Plan::Refuse("podinfo.test is paused: resume it first".into())
    );
}

#[test]
fn refusals_say_why_in_words() {
    let cases = [
        (
            RequestAction::Promote,
            CanaryPhase::Initialized,
            "podinfo.test has no analysis in progress (phase Initialized)",
        ),
        (
            RequestAction::Promote,
            CanaryPhase::Promoting,
            "podinfo.test is already being promoted",
        ),
        (
            RequestAction::Abort,
            CanaryPhase::Finalising,
            "podinfo.test is being promoted: its primary already runs the new revision",
        ),
        (
            RequestAction::Retry,
            CanaryPhase::Succeeded,
            "only a Failed canary can be retried (podinfo.test is in phase Succeeded)",
        ),
        (
            RequestAction::Retry,
            CanaryPhase::Empty,
            "only a Failed canary can be retried (podinfo.test is not initialized yet)",
        ),
    ];
    for (action, phase, why) in cases {
        assert_eq!(
            plan(&request(action, false), KEY, phase, false, false, false),
            Plan::Refuse(why.into()),
            "{action:?} {phase:?}"
        );
    }
    assert_eq!(
        refused(
            &request(RequestAction::Retry, false),
            "only a Failed canary can be retried (podinfo.test is in phase Succeeded)"
        ),
        "Retry requested by alice via kubectl serin ignored: only a Failed canary can be retried (podinfo.test is in phase Succeeded)"
    );
}

#[test]
fn resume_needs_a_pause_that_ends() {
    let resume = request(RequestAction::Resume, false);
    let phase = CanaryPhase::Progressing;
    assert_eq!(plan(&resume, KEY, phase, false, true, false), Plan::Resume);
    assert_eq!(
        plan(&resume, KEY, phase, false, false, false),
        Plan::Refuse("podinfo.test is not paused".into())
    );
    assert!(matches!(
        plan(&resume, KEY, phase, true, false, false),
        Plan::Refuse(why) if why.contains("still paused")
    ));
}

#[test]
fn a_waiting_promotion_goes_on_only_while_the_analysis_does() {
    let promote = request(RequestAction::Promote, true);
    for (phase, expected) in [
        (CanaryPhase::Progressing, Plan::Promote { force: true }),
        (CanaryPhase::WaitingPromotion, Plan::Promote { force: true }),
        (CanaryPhase::Failed, Plan::Drop),
        (CanaryPhase::Promoting, Plan::Drop),
        (CanaryPhase::Succeeded, Plan::Drop),
    ] {
        assert_eq!(plan(&promote, KEY, phase, false, false, true), expected);
    }
}

#[test]
fn each_request_id_is_handled_once() {
    let value = r#"{"id":"r-1","action":"promote","by":"alice"}"#;
    let a = annotations(&[(REQUEST_ANNOTATION, value)]);
    let new = incoming(Some(&a), None);
    assert_eq!(
        new,
        Some(Incoming::New(request(RequestAction::Promote, false)))
    );
    assert_eq!(
        incoming(Some(&a), Some(&last("r-0", RequestOutcome::Done))),
        new,
        "an older request was handled"
    );
    for done in [
        RequestOutcome::Done,
        RequestOutcome::Refused,
        RequestOutcome::Superseded,
    ] {
        assert_eq!(incoming(Some(&a), Some(&last("r-1", done))), None);
    }
    assert_eq!(
        incoming(Some(&a), Some(&last("r-1", RequestOutcome::Waiting))),
        Some(Incoming::Waiting(request(RequestAction::Promote, false)))
    );
    assert_eq!(incoming(None, None), None);
    assert_eq!(incoming(Some(&annotations(&[("other", "x")])), None), None);
}

#[test]
fn an_unreadable_request_is_refused_once() {
    let a = annotations(&[(REQUEST_ANNOTATION, "promote please")]);
    let Some(Incoming::Unreadable { id, error }) = incoming(Some(&a), None) else {
        panic!("not unreadable");
    };
    assert_eq!(id, "promote please");
    assert!(
        error.starts_with("serin.dev/request is not a kubectl serin request: "),
        "{error}"
    );
    assert_eq!(
        incoming(
            Some(&a),
            Some(&last("promote please", RequestOutcome::Refused))
        ),
        None
    );
}

#[test]
fn pause_follows_the_annotation() {
    let since = PauseStatus {
        by: "alice".into(),
        since: Time(Timestamp::UNIX_EPOCH),
    };
    let on = annotations(&[(PAUSE_ANNOTATION, r#"{"by":"alice"}"#)]);
    assert_eq!(pause_change(None, None), PauseChange::Running);
    assert_eq!(
        pause_change(Some(&on), None),
        PauseChange::Pause(PauseNote { by: "alice".into() })
    );
    assert_eq!(pause_change(Some(&on), Some(&since)), PauseChange::Hold);
    assert_eq!(pause_change(None, Some(&since)), PauseChange::Resume);
    assert!(PauseChange::Hold.paused());
    assert!(!PauseChange::Resume.paused());
}

#[test]
fn only_news_are_urgent() {
    let request = annotations(&[(
        REQUEST_ANNOTATION,
        r#"{"id":"r-1","action":"promote","by":"alice"}"#,
    )]);
    assert!(!urgent(None, None, None), "no annotations");
    assert!(urgent(Some(&request), None, None));
    assert!(
        !urgent(
            Some(&request),
            Some(&last("r-1", RequestOutcome::Waiting)),
            None
        ),
        "a waiting promotion goes at the analysis' pace"
    );
    let pause = annotations(&[(PAUSE_ANNOTATION, "true")]);
    assert!(urgent(Some(&pause), None, None), "a pause starts");
    let since = PauseStatus {
        by: String::new(),
        since: Time(Timestamp::UNIX_EPOCH),
    };
    assert!(!urgent(Some(&pause), None, Some(&since)), "a pause holds");
    assert!(urgent(None, None, Some(&since)), "a pause ends");
}

#[test]
fn event_texts() {
    assert_eq!(
        accepted(&request(RequestAction::Promote, false), KEY),
        "Promotion requested by alice via kubectl serin: skipping the rest of the analysis of podinfo.test"
    );
    assert_eq!(
        accepted(&request(RequestAction::Promote, true), KEY),
        "Promotion past the confirm-promotion gate requested by alice via kubectl serin: skipping the rest of the analysis of podinfo.test"
    );
    assert_eq!(
        accepted(&request(RequestAction::Abort, false), KEY),
        "Abort requested by alice via kubectl serin: rolling back podinfo.test"
    );
    assert_eq!(
        paused(&PauseNote::default(), KEY),
        "podinfo.test paused by an unnamed user via kubectl serin: no step, no check and no weight change until it is resumed"
    );
}
