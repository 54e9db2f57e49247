"""plan layer: what each host should look like, and what must change. Pure: no I/O, clock, randomness.

Deploy flow (the engine drives it, the plan is the contract):
1. `needs.initial_fact_request(topology, host)` -> kwargs for `facts.gather.gather_facts`.
2. `firewall.choose_backend(topology, facts.firewall_active, facts.firewall_backends)`;
   `firewall.unresolved_names(topology)` lists nodes advertised by name (resolve them to IPs).
3. `desired.release_spec(topology, release)` with the host's arch; then
   `desired.desired_state(topology, host, release=..., certs=..., firewall_backend=...,
   peer_addresses=...) -> HostState`.
4. `diff.diff(state, facts) -> HostPlan` (empty when converged); `diff.effects(plan, state)` says
   whether the node needs a restart or a reload afterwards.
5. `report.plan_to_text(plans)` / `report.plan_to_json(plans)` for `deploy --dry-run` / `--json`.

Rendering: `render.render_cockroach_unit` (systemd unit), `firewall.render_nft` / `ufw_script` /
`firewalld_script` (and `removal_script` for destroy); `layout.layout_for` says where everything lives.
"""
