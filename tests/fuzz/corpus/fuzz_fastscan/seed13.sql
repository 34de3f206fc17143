SELECT 'a'
'b'