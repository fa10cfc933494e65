"""Invitations and mail: Peil mails each participant their own link, and reminds those who have not answered."""
