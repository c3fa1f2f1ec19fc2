-- Run several reads of one site's keys in one call (a cluster refuses multi-key commands in
-- pipelines, and all of a site's keys share a slot). ARGV[1] is a JSON list of commands:
--   {"HMGET", k, field, ...}   {"PFCOUNT", k, k, ...}   {"ZUNION", k, k, ...} (with scores)
-- where a number is a 1-based index into KEYS and a string is passed as it is.
-- Returns one reply per command, in order.

local commands = cjson.decode(ARGV[1])
local replies = {}
for i, command in ipairs(commands) do
    local name = command[1]
    local args = {}
    for j = 2, #command do
        local arg = command[j]
        if type(arg) == 'number' then args[#args + 1] = KEYS[arg] else args[#args + 1] = arg end
    end
    if name == 'ZUNION' then
        table.insert(args, 1, #args)
        args[#args + 1] = 'WITHSCORES'
        replies[i] = redis.call('ZUNION', unpack(args))
    elseif name == 'HMGET' or name == 'PFCOUNT' then
        replies[i] = redis.call(name, unpack(args))
    else
        return redis.error_reply('read.lua: unsupported command ' .. tostring(name))
    end
end
return replies
