-- Apply one flush's part for some sites, exactly once, then (optionally) advance the
-- appliance-wide offsets and coverage. ARGV[1] is a JSON plan; every key it uses is in KEYS
-- and referenced by its 1-based index (so a cluster can route the call by its keys).
--
-- plan.sites[i] = {guard, latest, ts, pos = {{field, first, last}, ...},
--                  hincr = {{k, field, n}}, pfadd = {{k, {members}}}, zincr = {{k, member, n}},
--                  expire = {{k, unix_time}}, guard_ttl}
-- plan.global  = {offsets = {{k, partition, last}}, meta, watermark?, since?} (or absent)
--
-- A site whose guard already holds every position is "held" (skipped); one that holds none
-- is "new" (applied, then its guard moves to the positions' last offsets). Anything between
-- is "partial": nothing at all is written and the caller re-folds what each site lacks.
-- Returns one state per site.

local plan = cjson.decode(ARGV[1])
local sites = plan.sites or {}

local function state_of(site)
    local guard = KEYS[site.guard]
    local new, held = 0, 0
    for _, p in ipairs(site.pos) do
        local last = tonumber(redis.call('HGET', guard, p[1]) or '-1')
        if last >= tonumber(p[3]) then
            held = held + 1
        elseif last < tonumber(p[2]) then
            new = new + 1
        end
    end
    if held == #site.pos then return 'held' end
    if new == #site.pos then return 'new' end
    return 'partial'
end

local states = {}
for i, site in ipairs(sites) do
    states[i] = state_of(site)
end
for i = 1, #states do
    if states[i] == 'partial' then return states end
end

for i, site in ipairs(sites) do
    if states[i] == 'new' then
        for _, op in ipairs(site.hincr) do redis.call('HINCRBY', KEYS[op[1]], op[2], op[3]) end
        for _, op in ipairs(site.pfadd) do redis.call('PFADD', KEYS[op[1]], unpack(op[2])) end
        for _, op in ipairs(site.zincr) do redis.call('ZINCRBY', KEYS[op[1]], op[3], op[2]) end
        for _, op in ipairs(site.expire) do redis.call('EXPIREAT', KEYS[op[1]], op[2]) end
        local guard = KEYS[site.guard]
        for _, p in ipairs(site.pos) do redis.call('HSET', guard, p[1], p[3]) end
        redis.call('EXPIRE', guard, site.guard_ttl)
        local latest = tonumber(redis.call('GET', KEYS[site.latest]) or '0')
        if tonumber(site.ts) > latest then
            redis.call('SET', KEYS[site.latest], site.ts, 'EX', site.guard_ttl)
        end
    end
end

local g = plan.global
if g then
    for _, o in ipairs(g.offsets) do
        local current = tonumber(redis.call('HGET', KEYS[o[1]], o[2]) or '-1')
        if tonumber(o[3]) > current then redis.call('HSET', KEYS[o[1]], o[2], o[3]) end
    end
    local meta = KEYS[g.meta]
    if g.watermark then
        local watermark = tonumber(redis.call('HGET', meta, 'watermark') or '0')
        if tonumber(g.watermark) > watermark then
            redis.call('HSET', meta, 'watermark', g.watermark)
        end
        redis.call('HSETNX', meta, 'since', g.since)
    end
end
return states
