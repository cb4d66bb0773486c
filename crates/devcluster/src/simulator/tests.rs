#![allow(clippy::unwrap_used)]
use super::*;

fn deploy(replicas: i64, annotations: Value) -> Value {
    json!({"metadata": {"name": "web", "namespace": "d", "uid": "u1", "generation": 2, "annotations": annotations},
        "spec": {"replicas": replicas, "progressDeadlineSeconds": 1, "template": {"spec": {}}}})
}

fn state() -> State {
    State {
        default_delay: Duration::from_millis(100),
        enabled: true,
        scripts: HashMap::new(),
        model: StatusModel::default(),
        knative: KnativeModel::default(),
        watch: Watchlist::default(),
    }
}

#[test]
fn settled_workloads_are_skipped_until_they_or_their_script_change() {
    let sim = Simulator::new(Duration::ZERO);
    let mut st = Store::new(1000);
    let def = st.registry.by_key("apps/deployments").unwrap();
    st.put(&def, deploy(2, json!({})));
    let get = |st: &Store| st.get("apps/deployments", "d", "web").unwrap().clone();
    let pending = |sim: &Simulator| {
        sim.lock()
            .watch
            .pending
            .contains(&("apps/deployments".to_string(), "d/web".to_string()))
    };

    // The object was stored without the API's defaults, which the first status write adds
    // (a new template hash): a few ticks until it is stable.
    for _ in 0..5 {
        sim.tick(&mut st);
    }
    assert_eq!(get(&st)["status"]["readyReplicas"], 2);
    assert!(!pending(&sim), "ready and unchanged: final");
    let rv = st.current_rv();
    sim.tick(&mut st);
    assert_eq!(st.current_rv(), rv, "no write while settled");
    let mut touched = get(&st);
    touched["metadata"]["labels"] = json!({"a": "b"});
    st.put(&def, touched);
    sim.tick(&mut st);
    assert!(!pending(&sim), "computed again, still final");
    assert_eq!(st.current_rv(), rv + 1, "no status write for a label");

    // A script applies at once, although the object did not change.
    sim.script(
        "Deployment",
        "d",
        "web",
        Script {
            ready_delay: None,
            behaviour: Behaviour::NeverReady,
        },
    );
    sim.tick(&mut st);
    assert!(get(&st)["status"].get("readyReplicas").is_none());
    sim.clear_script("Deployment", "d", "web");
    sim.tick(&mut st);
    sim.tick(&mut st);
    assert_eq!(get(&st)["status"]["readyReplicas"], 2);
    assert!(!pending(&sim));

    // A new spec is a new version: computed again.
    let mut scaled = get(&st);
    scaled["spec"]["replicas"] = json!(3);
    st.put(&def, scaled);
    sim.tick(&mut st);
    assert_eq!(get(&st)["status"]["readyReplicas"], 3);

    // A log compacted past the last tick cannot say what changed: every workload is
    // looked at again.
    sim.tick(&mut st);
    let mut scaled = get(&st);
    scaled["spec"]["replicas"] = json!(4);
    st.put(&def, scaled);
    st.compact();
    sim.tick(&mut st);
    assert_eq!(get(&st)["status"]["readyReplicas"], 4);
}

#[test]
fn a_deleted_workload_is_forgotten_and_its_successor_rolls_out_anew() {
    let sim = Simulator::new(Duration::from_secs(3600));
    let mut st = Store::new(1000);
    let def = st.registry.by_key("apps/deployments").unwrap();
    st.put(
        &def,
        deploy(2, json!({"devcluster.serin.dev/ready-delay-ms": "0"})),
    );
    for _ in 0..3 {
        sim.tick(&mut st);
    }
    let get = |st: &Store| st.get("apps/deployments", "d", "web").cloned();
    assert_eq!(get(&st).unwrap()["status"]["readyReplicas"], 2);
    assert_eq!(sim.lock().model.rollouts.len(), 1);

    st.remove(&def, "d", "web");
    sim.tick(&mut st);
    assert!(
        sim.lock().model.rollouts.is_empty(),
        "the rollout is forgotten"
    );
    assert!(sim.lock().watch.pending.is_empty());

    // Same name, new uid, the cluster's default delay (an hour): not ready yet.
    let mut again = deploy(2, json!({}));
    again["metadata"]["uid"] = json!("u2");
    st.put(&def, again);
    sim.tick(&mut st);
    let status = &get(&st).unwrap()["status"];
    assert_eq!(status["replicas"], 2);
    assert!(status.get("readyReplicas").is_none());
    assert!(sim.lock().model.rollouts.contains_key("u2"));
}

#[test]
fn ready_after_delay_and_deadline() {
    let mut s = state();
    let t0 = Instant::now();
    let d = deploy(3, json!({}));
    let st = compute(&mut s, "Deployment", &d, t0);
    assert_eq!(st["observedGeneration"], 2);
    assert!(st.get("readyReplicas").is_none());
    assert_eq!(st["unavailableReplicas"], 3);
    let st = compute(&mut s, "Deployment", &d, t0 + Duration::from_millis(150));
    assert_eq!(st["availableReplicas"], 3);
    assert_eq!(st["conditions"][1]["reason"], "NewReplicaSetAvailable");
    let never = deploy(2, json!({ANNOTATION_BEHAVIOUR: "never-ready"}));
    let mut s = state();
    compute(&mut s, "Deployment", &never, t0);
    let st = compute(
        &mut s,
        "Deployment",
        &never,
        t0 + Duration::from_millis(1500),
    );
    assert_eq!(st["conditions"][1]["reason"], "ProgressDeadlineExceeded");
    assert!(Script::from_annotations(&deploy(1, json!({ANNOTATION_BEHAVIOUR: "bogus"}))).is_err());
}

#[test]
fn ready_then_unready_and_slow() {
    let mut s = state();
    let t0 = Instant::now();
    let d = deploy(
        2,
        json!({ANNOTATION_BEHAVIOUR: "ready-then-unready", ANNOTATION_UNREADY_AFTER: "200"}),
    );
    compute(&mut s, "Deployment", &d, t0);
    assert_eq!(
        compute(&mut s, "Deployment", &d, t0 + Duration::from_millis(150))["readyReplicas"],
        2
    );
    assert!(
        compute(&mut s, "Deployment", &d, t0 + Duration::from_millis(350))
            .get("readyReplicas")
            .is_none()
    );
    let mut s = state();
    let slow = deploy(
        3,
        json!({ANNOTATION_BEHAVIOUR: "slow-rollout", ANNOTATION_STEP: "100", ANNOTATION_READY_DELAY: "0"}),
    );
    assert_eq!(
        compute(&mut s, "Deployment", &slow, t0)["updatedReplicas"],
        1
    );
    let mid = compute(&mut s, "Deployment", &slow, t0 + Duration::from_millis(120));
    assert_eq!(
        (
            mid["updatedReplicas"].as_i64(),
            mid["readyReplicas"].as_i64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(
        compute(&mut s, "Deployment", &slow, t0 + Duration::from_millis(500))["readyReplicas"],
        3
    );
}
