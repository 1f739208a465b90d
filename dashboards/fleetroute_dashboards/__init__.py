"""fleetroute's Grafana dashboards as code, built with grafana-foundation-sdk (one module each).

promql      selectors and PromQL helpers shared by every dashboard
panels      Panel/Query descriptions and their rendering through the SDK's builders
schema      validation of a dashboard's JSON against the SDK's typed models
overview    the fleet at a glance          policy   one RoutingPolicy's learning and feedback
pool        one model pool's serving       router   the router process itself
"""
