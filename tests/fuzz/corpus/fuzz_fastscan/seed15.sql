SELECT 'a' -- c
'b'