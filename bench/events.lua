-- Realistic /api/events traffic: mixed paths, referrers, user agents and custom events.
local paths = {"/", "/pricing", "/blog/why-privacy", "/docs/install", "/docs/api", "/signup", "/about"}
local referrers = {"", "https://www.google.com/", "https://news.ycombinator.com/", "https://duckduckgo.com/", "https://twitter.com/x"}
local agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
  "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
}
local bodies = {}
math.randomseed(42)
for i = 1, 500 do
  local path = paths[math.random(#paths)]
  local event = '"name":"pageview"'
  if i % 10 == 0 then event = '"name":"Signup","props":{"plan":"pro","seats":3}' end
  bodies[i] = string.format(
    '{"domain":"bench.example","path":"%s","url":"https://bench.example%s?utm_source=news","referrer":"%s","title":"Page %d","sessionId":"s%d","viewport":{"width":1280,"height":720},%s}',
    path, path, referrers[math.random(#referrers)], i, i % 97, event)
end
local counter = 0
request = function()
  counter = counter + 1
  local headers = {["Content-Type"] = "text/plain", ["User-Agent"] = agents[counter % #agents + 1]}
  return wrk.format("POST", "/api/events", headers, bodies[counter % #bodies + 1])
end
