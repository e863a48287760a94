"""A fake Kubernetes cluster for tests: a real HTTP API server, in memory.

No real API server can run here, so this speaks enough of the Kubernetes REST
API for the official `kubernetes` client (typed APIs, CustomObjectsApi,
`ApiClient.call_api`, `watch.Watch`), and runs a small control plane behind it
that acts the way a real one does, so code under test reads the status fields
it would read on a real cluster.

API server (server.py)
    create/get/list/watch/replace/patch/delete/deletecollection of namespaced
    and cluster-scoped objects; `generateName`; label selectors (=, !=, in,
    notin, exists) and field selectors; `limit`/`continue`; resourceVersions
    with optimistic concurrency (409 Conflict on a stale PUT/PATCH); generation
    bumped on spec changes; status and scale subresources; JSON, merge,
    strategic-merge and apply patches; pod logs and eviction; 404/409/422 Status
    bodies worded like the real ones; /version and API discovery. A watch
    without a resourceVersion starts with ADDED for what exists; one from an
    expired resourceVersion gets 410 Gone.
    Built in: pods, events, nodes, namespaces, services, endpoints, secrets,
    configmaps, serviceaccounts, persistentvolumeclaims, resourcequotas,
    apps/v1 deployments, replicasets, statefulsets, daemonsets,
    controllerrevisions, batch/v1 jobs and cronjobs, discovery.k8s.io/v1
    endpointslices, networking.k8s.io/v1 ingresses and networkpolicies,
    coordination.k8s.io/v1 leases, policy/v1 poddisruptionbudgets and
    apiextensions.k8s.io/v1 customresourcedefinitions. Custom resources are
    served once registered (`register_kind`, or by creating a CRD); others
    answer 404 like a real API server. Storage is per group, so a custom
    `deployments.example.com` never collides with `apps/v1 deployments`.

Control plane (controllers.py), all in one thread, one pass at a time:
    scheduler    binds pods to Ready, schedulable nodes matching nodeSelector,
                 required node affinity and taints/tolerations, round-robin;
                 honours a preset spec.nodeName; otherwise PodScheduled=False
                 Unschedulable and a FailedScheduling event.
    kubelet      moves pods on: ContainerCreating → Running (podIP, hostIP,
                 conditions, containerStatuses) → Ready; by image name:
                   fake/unschedulable     stays Pending, PodScheduled=False (Insufficient cpu)
                   fake/imagepullbackoff  container waiting: ImagePullBackOff
                   fake/createerror       container waiting: CreateContainerConfigError
                   fake/oomkilled         terminated OOMKilled (137)
                   fake/exit1             terminated Error (1)
                   fake/exit0             terminated Completed (0): Succeeded
                   fake/evicted           Failed, reason Evicted
                   fake/notready          Running but never Ready
                   anything else          Running and Ready
                 With restartPolicy Never the failures end the pod (Failed);
                 with Always/OnFailure they crash-loop (CrashLoopBackOff,
                 restartCount 1, lastState terminated), as Deployment pods do.
    Deployments  a ReplicaSet per pod template (pod-template-hash label,
                 revision annotation, ownerReferences), RollingUpdate with
                 maxSurge/maxUnavailable or Recreate, rollback, scaling,
                 revisionHistoryLimit; status observedGeneration, replicas,
                 updatedReplicas, readyReplicas, availableReplicas,
                 unavailableReplicas (zeros omitted, as the API does) and
                 conditions Available (MinimumReplicasAvailable/Unavailable),
                 Progressing (NewReplicaSetCreated, ReplicaSetUpdated,
                 NewReplicaSetAvailable, ProgressDeadlineExceeded,
                 DeploymentPaused) and ReplicaFailure.
    ReplicaSets  create/delete pods to spec.replicas; status replicas,
                 fullyLabeledReplicas, readyReplicas, availableReplicas
                 (minReadySeconds), observedGeneration, ReplicaFailure.
    StatefulSets pods <name>-0..N-1, OrderedReady (one at a time, each after
                 the previous is Ready) or Parallel, scale-down from the
                 highest ordinal, RollingUpdate in reverse ordinal order (with
                 partition) or OnDelete, ControllerRevisions, PVCs from
                 volumeClaimTemplates; status observedGeneration, replicas,
                 readyReplicas, availableReplicas, currentReplicas,
                 updatedReplicas, currentRevision, updateRevision.
    Services     clusterIP (and nodePort) allocation; for a selector, an
                 Endpoints object (ready pods under subsets[].addresses, others
                 under notReadyAddresses) and an EndpointSlice.
    GC           Background, Foreground and Orphan propagation through
                 ownerReferences; finalizers hold deletion; namespaces empty
                 themselves (Terminating) before they go.

Test API
    FakeKube(nodes=1, kubelet_delay=0.05, scheduler_delay=0.0,
             pod_delete_delay=0.0, controllers=True)
    get/list/add/update/remove/delete(resource, namespace, ...) on the store;
    event(...), events_for(namespace, name); settle(timeout) waits until the
    cluster has converged; register_kind(group_version, plural, kind,
    namespaced=True, status_subresource=False).

Faults
    fail_next(verb, resource, status, message=None)  answer the next matching
        request with a real Status (403 Forbidden, 409 Conflict, 422 Invalid,
        429, 500 InternalError, 503, 504 ...); verb is HTTP (GET, POST) or
        Kubernetes (list, watch, get, create, update, patch, delete).
    lose_next_answer(verb, resource, status)  carry it out, then answer an error.
    deny_create(resource, message=None, status=403, namespace=None) /
        allow_create(resource)  refuse every create, the controllers' too
        (ReplicaFailure FailedCreate on ReplicaSets and Deployments).
    scheduler_down() / scheduler_up(), scheduler_delay   pods stay Pending.
    node_not_ready(name) / node_ready(name)   Ready=Unknown, unreachable taints,
        its pods lose readiness, nothing new starts or schedules there.
    cordon(name) / uncordon(name), add_node(name, labels, ready)
    break_node(name, reason) / fix_node(name)  pods placed there stay
        ContainerCreating with FailedCreatePodSandBox warnings.
    set_ready(namespace, pod, True/False/None)  a readiness probe flips.
    kubelet_delay  seconds per kubelet step; pod_delete_delay  seconds a
        deleted pod stays Terminating (deletionTimestamp set) before it goes
        (gracePeriodSeconds=0 deletes at once).
    controllers_paused = True  the controller manager stops (no ReplicaSets,
        pods, status, endpoints or garbage collection); progress_deadline_factor
        scales progressDeadlineSeconds down for tests.
    drop_watches(), expire_history(), watch_count()  for watch streams.
"""

from tests.fakekube.server import FakeKube

__all__ = ["FakeKube"]
